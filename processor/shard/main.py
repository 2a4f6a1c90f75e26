"""The ``ecs-state-processor`` entry point: the process the KCL daemon starts for each shard lease.

stdout belongs to the MultiLang protocol: it is claimed at the file-descriptor level before anything else runs, and
everything else that writes to fd 1 (print, libraries, child processes) lands on stderr. Settings are loaded once;
a configuration error is one JSON log line and exit 2, before any protocol message (amazon-kclpy missing, i.e.
the ``worker`` extra not installed, is one too: this module imports it only once that is checked). The tables and
the metrics target are checked in ``initialize`` (``shard/table_check.py``, on the writer's thin client), before
any record."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from processor import logs
from processor.config import Settings, load_settings
from processor.errors import EXIT_CONFIG, ConfigError, worker_extra_missing
from processor.shard.catalog import Catalog
from processor.shard.dynamodb_http import DynamoDBHttp
from processor.shard.table_check import table_problems
from processor.shard.writer import Writer


def claim_stdout() -> TextIO:
    """Keep the real stdout for the protocol and send everything else that writes to fd 1 (print, libraries,
    child processes) to stderr."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8")


def make_writer(settings: Settings, shard_id: str = "?") -> Writer:
    """The writer on the thin DynamoDB client: region, endpoint, credentials and CA bundle from the environment
    (resolved through botocore once), one kept-alive connection per concurrent write."""
    client = DynamoDBHttp.from_environment(
        pool=settings.write_concurrency, timeout_s=settings.write_timeout_millis / 1000
    )
    return Writer(settings, client, shard_id=shard_id, catalog=Catalog(settings.catalog_table, shard_id=shard_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ecs-state-processor",
        description="KCL MultiLang record processor (started by the daemon; speaks "
        "the MultiLang protocol on stdin/stdout)",
    )
    parser.add_argument("--properties", help="properties file (default: $ECS_STATE_PROPERTIES, else defaults)")
    args = parser.parse_args(argv)
    protocol_out = claim_stdout()
    missing = worker_extra_missing()
    if missing:
        logs.log("config_error", level="ERROR", error=missing)
        return EXIT_CONFIG
    try:
        settings = load_settings(args.properties)
    except ConfigError as exc:
        logs.log("config_error", level="ERROR", error=str(exc))
        return EXIT_CONFIG
    from processor.shard.loop import Process  # amazon-kclpy: the worker extra, checked just above
    from processor.shard.record_processor import ShardProcessor

    logs.configure(settings.log_level)
    processor = ShardProcessor(
        settings,
        lambda shard_id: make_writer(settings, shard_id),
        startup=lambda writer: table_problems(settings, writer.client),
    )
    Process(processor, input_file=sys.stdin, output_file=protocol_out, error_file=sys.stderr).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

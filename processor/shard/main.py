"""The ``ecs-state-processor`` entry point: the process the KCL daemon starts for each shard lease.

stdout belongs to the MultiLang protocol: it is claimed at the file-descriptor level before anything else runs, and
everything else that writes to fd 1 (print, libraries, child processes) lands on stderr. Settings are loaded once;
a configuration error is one JSON log line and exit 2, before any protocol message. The tables and the metrics
target are checked in ``initialize`` (``shard/table_check.py``, on the writer's thin client), before any record."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from amazon_kclpy import kcl

from processor import logs
from processor.config import Settings, load_settings
from processor.errors import EXIT_CONFIG, ConfigError
from processor.shard.catalog import Catalog
from processor.shard.dynamodb_http import DynamoDBHttp
from processor.shard.record_processor import ShardProcessor
from processor.shard.table_check import table_problems
from processor.shard.writer import Writer


def claim_stdout() -> TextIO:
    """Keep the real stdout for the protocol and send everything else that writes to fd 1 (print, libraries,
    child processes) to stderr."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8")


class Process(kcl.KCLProcess):
    """amazon_kclpy's loop, with one change: the line read from the daemon is dropped once parsed, before the
    action runs. Its own loop keeps it until the next line has been read, so a 10,000-record call's ~40 MB of
    text stayed alive through the whole call (and its flushes) and beside the next call's line while that one
    was read (docs/sizing.md)."""

    def run(self) -> None:
        while self._handle_next():
            pass

    def _handle_next(self) -> bool:
        line = self.io_handler.read_line()
        if not line:
            return False
        action = self.io_handler.load_action(line)
        del line
        self._perform_action(action)
        self._report_done(action.action)
        return True


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
    try:
        settings = load_settings(args.properties)
    except ConfigError as exc:
        logs.log("config_error", level="ERROR", error=str(exc))
        return EXIT_CONFIG
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

"""``ecs-state``: the operator's command. Each subcommand lives in its own module (``register`` + ``run``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import logs
from .config import ConfigError

#: modules that provide subcommands (each exposes ``register(subparsers)``); optional ones may be absent.
COMMAND_MODULES = ["tables", "localstack", "daemon", "producer", "verify", "readside", "reconcile", "faults"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecs-state", description="Keep the newest ECS state in DynamoDB.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"processor.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        logs.log("config_error", level="ERROR", error=str(exc))
        print(f"ecs-state: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``python -m workshop``: the development and testing commands, beside the product's ``ecs-state`` CLI and built
the same way (each command a module with ``register`` + ``run``; errors mapped to exit codes by
``processor.errors.exit_code_for``, the one mapping)."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from processor import logs
from processor.errors import EXIT_INTERRUPTED, EcsStateError, exit_code_for
from workshop.bench import command as bench
from workshop.bench import index_cost
from workshop.local import demo, stack_command
from workshop.testing import fault_proxy_command, fault_report

COMMANDS: tuple[ModuleType, ...] = (stack_command, demo, fault_proxy_command, fault_report, bench, index_cost)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workshop", description="ecs-state's development tooling: local stack, demo, faults, bench."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except EcsStateError as exc:
        logs.log("error", level="ERROR", kind=type(exc).__name__, error=str(exc))
        print(f"workshop {args.command}: {exc}", file=sys.stderr)
        return exit_code_for(exc)


if __name__ == "__main__":
    sys.exit(main())

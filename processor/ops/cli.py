"""``ecs-state``: the one command-line shell. Every subcommand lives in its own module (``register`` + ``run``);
this module imports them all statically, groups them, and maps every error that escapes to an exit code once
(``errors.exit_code_for``)."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from processor import logs
from processor.errors import EXIT_INTERRUPTED, EcsStateError, exit_code_for
from processor.loadgen import producer, verify
from processor.ops import canary, read, reconcile, redrive, setup_tables, status, supervisor

#: what an operator runs in production
OPERATOR_COMMANDS: tuple[ModuleType, ...] = (setup_tables, supervisor, read, reconcile, status, redrive, canary)
#: load tests of a stream with the synthetic fleet (the development tooling is ``python -m workshop``)
LOAD_COMMANDS: tuple[ModuleType, ...] = (producer, verify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecs-state", description="Keep the newest ECS state in DynamoDB.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = []
    for title, modules in (("operator commands", OPERATOR_COMMANDS),
                           ("load-test commands", LOAD_COMMANDS)):
        before = set(subparsers.choices)
        for module in modules:
            module.register(subparsers)
        groups.append(f"{title}: {' '.join(name for name in subparsers.choices if name not in before)}")
    parser.epilog = "\n".join(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except EcsStateError as exc:
        logs.log("error", level="ERROR", kind=type(exc).__name__, error=str(exc))
        print(f"ecs-state {args.command}: {exc}", file=sys.stderr)
        return exit_code_for(exc)


if __name__ == "__main__":
    sys.exit(main())

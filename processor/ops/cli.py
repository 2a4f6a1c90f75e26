"""``ecs-state``: the one command-line shell. Every subcommand lives in its own module (``register`` + ``run``);
this module imports them all statically, groups them, and maps every error that escapes to an exit code once
(``errors.exit_code_for``) and to one line (``errors.describe``).

Options every command shares are added here, once, to every command (nested ones included), so they can be written
before or after the command's name: ``--region`` and ``--profile`` (resolved by ``aws.configure`` before the command
runs: ``--region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's region, ``regionName`` of the properties
file). ``ecs-state --version`` prints ``processor.__version__``.

Every failure a user can cause (a setting, a file, a table, no region, no credentials, an unreachable endpoint, a
denied call) ends as one line on stderr and exit 2; only a bug (any other exception) shows a traceback (exit 4).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from types import ModuleType

from processor import __version__, aws
from processor.errors import EXIT_BUG, EXIT_INTERRUPTED, describe, exit_code_for
from processor.loadgen import producer, verify
from processor.ops import canary, read, reconcile, redrive, setup_tables, status
from processor.worker import supervisor

#: what an operator runs in production
OPERATOR_COMMANDS: tuple[ModuleType, ...] = (setup_tables, supervisor, read, reconcile, status, redrive, canary)
#: load tests of a stream with the synthetic fleet (the development tooling is ``python -m workshop``)
LOAD_COMMANDS: tuple[ModuleType, ...] = (producer, verify)


def add_aws_options(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """``--region`` / ``--profile`` on one parser (SUPPRESS on commands, so a value given before the command's
    name is not reset by the command's parser)."""
    parser.add_argument(
        "--region",
        default=default,
        metavar="REGION",
        help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, "
        "regionName of the properties file)",
    )
    parser.add_argument(
        "--profile",
        default=default,
        metavar="NAME",
        help="AWS profile of ~/.aws/config (default: AWS_PROFILE, else the default chain)",
    )


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under ``parser`` that runs a command (the ones with no subcommands of their own)."""
    children = [
        choice
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in dict.fromkeys(action.choices.values())
    ]
    if not children:
        return [parser]
    return [leaf for child in children for leaf in _leaf_parsers(child)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecs-state",
        description="Keep the newest ECS state in DynamoDB.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ecs-state {__version__}")
    add_aws_options(parser, default=None)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = []
    for title, modules in (("operator commands", OPERATOR_COMMANDS), ("load-test commands", LOAD_COMMANDS)):
        before = set(subparsers.choices)
        for module in modules:
            module.register(subparsers)
        groups.append(f"{title}: {' '.join(name for name in subparsers.choices if name not in before)}")
    for leaf in _leaf_parsers(parser):
        add_aws_options(leaf)
    parser.epilog = "\n".join(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        aws.configure(region=args.region, profile=args.profile, properties_path=getattr(args, "properties", None))
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        code = exit_code_for(exc)
        if code == EXIT_BUG:
            traceback.print_exc()
            print(
                f"ecs-state {args.command}: a bug: {type(exc).__name__}: {exc}; please report it with the "
                f"traceback above",
                file=sys.stderr,
            )
            return code
        print(f"ecs-state {args.command}: {describe(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())

"""docs/cli.md cannot drift from ``--help``: every command and subcommand ``ecs-state --help`` shows has a section
(a ``### `ecs-state COMMAND ...``` heading), and every option string of every command is named in its section, in
a section of its parent command (``redrive``'s shared options) or in "What every command shares"."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from processor.ops.cli import build_parser

CLI_MD = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
SHARED = "What every command shares"


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """{command path: its option strings} for every command under ``parser`` (aliases folded, ``-h`` left out)."""
    found: dict[tuple[str, ...], list[str]] = {}
    if path:
        found[path] = [
            option
            for action in parser._actions
            for option in action.option_strings
            if option not in ("-h", "--help") and action.help != argparse.SUPPRESS
        ]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, child in action.choices.items():
                if id(child) not in seen:
                    seen.add(id(child))
                    found.update(commands(child, (*path, name)))
    return found


def sections(markdown: str) -> dict[str, str]:
    """{heading text: body} of every ## / ### section."""
    parts = re.split(r"^(#{2,3} .+)$", markdown, flags=re.M)
    return {parts[i].lstrip("#").strip(): parts[i] + parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def command_sections(all_sections: dict[str, str], path: tuple[str, ...]) -> list[str]:
    """The sections whose heading starts with `ecs-state <path>` (for a subcommand, also its parent's)."""
    wanted = [f"`ecs-state {' '.join(path[: n + 1])}" for n in range(len(path))]
    return [body for heading, body in all_sections.items() if any(heading.startswith(w) for w in wanted[-2:])]


def named(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


PARSER_COMMANDS = commands(build_parser())


def test_the_walk_finds_every_command_and_option() -> None:
    assert ("redrive", "queue") in PARSER_COMMANDS and ("tasks",) in PARSER_COMMANDS
    assert "--cluster" in PARSER_COMMANDS[("tasks",)] and "--region" in PARSER_COMMANDS[("tasks",)]


@pytest.mark.parametrize("path", sorted(PARSER_COMMANDS), ids=" ".join)
def test_docs_cli_md_names_every_command_and_each_of_its_options(path: tuple[str, ...]) -> None:
    all_sections = sections(CLI_MD.read_text(encoding="utf-8"))
    own = command_sections(all_sections, path)
    if len(path) == 1 and any(p[:1] == path and len(p) > 1 for p in PARSER_COMMANDS):
        return  # a group (redrive): its subcommands have the sections
    assert own, f"docs/cli.md has no '### `ecs-state {' '.join(path)} ...`' section"
    text = "\n".join(own) + all_sections[SHARED]
    missing = [option for option in PARSER_COMMANDS[path] if not named(option, text)]
    assert not missing, f"docs/cli.md does not name {missing} of `ecs-state {' '.join(path)}`"


def test_an_option_named_only_as_a_longer_one_is_not_named() -> None:
    assert not named("--all", "`--all-clusters`") and named("--all", "`--all` lists")

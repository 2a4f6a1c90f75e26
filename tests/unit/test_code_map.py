"""The code map (docs/architecture.md) says what each module's docstring says, and the code tells no history.

A row of the code map is the first sentence of its module's docstring, nothing else (double backticks become
single ones, ``|`` is escaped for the table), so the two cannot drift apart: change a module's opening sentence and
this test names the row to change. ``python tests/unit/test_code_map.py --write`` rewrites every row from the
docstrings (run it after changing a docstring, then read the diff).

Each step of the "life of a record" table names a module and the functions that do it; every one named must be
defined in that module or in a module the cell names (``core/route.build``), so a rename breaks the table here.

Code, docstrings and ``--help`` say what is true now and why, never where it came from: no issue numbers
(``issue 12``, ``#12``) in ``processor/`` or ``workshop/``; the CHANGELOG and ``bench/`` keep the history.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\| `((?:processor|workshop)/[\w/]+\.py)` \| (.*) \|$")
ISSUE_REFERENCE = re.compile(r"\bissues? \d+|(?<![\w&])#\d+\b", re.IGNORECASE)


def modules() -> list[Path]:
    return sorted([*(ROOT / "processor").rglob("*.py"), *(ROOT / "workshop").rglob("*.py")])


def first_sentence(path: Path) -> str:
    """The docstring's first sentence, as a code-map cell: up to the first full stop followed by a space or the end
    of the first paragraph."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(docstring.split("\n\n")[0].split())
    end = re.search(r"\.(\s|$)", paragraph)
    return (paragraph[: end.start()] if end else paragraph).replace("``", "`")


def cell(path: Path) -> str:
    return first_sentence(path).replace("|", "\\|")


def code_map_rows(text: str) -> dict[str, str]:
    section = text.split("\n## Code map\n", 1)[1]
    return {m[1]: m[2] for line in section.splitlines() if (m := ROW.match(line))}


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", [p for p in modules() if p.name != "__init__.py"], ids=_id)
def test_every_module_opens_with_a_docstring_whose_first_sentence_says_what_it_is(path: Path) -> None:
    assert len(first_sentence(path)) >= 10, f"{_id(path)}: open the module with a docstring saying what it is"


def test_each_code_map_row_is_the_first_sentence_of_its_modules_docstring() -> None:
    rows = code_map_rows(ARCHITECTURE.read_text(encoding="utf-8"))
    assert rows, "no code map rows found in docs/architecture.md"
    wrong = {
        name: cell(ROOT / name) for name, text in rows.items() if (ROOT / name).is_file() and text != cell(ROOT / name)
    }
    assert not wrong, (
        "these code map rows (docs/architecture.md) differ from their module's first sentence; make them say "
        "(or run `python tests/unit/test_code_map.py --write`):\n" + "\n".join(f"{k}: {v}" for k, v in wrong.items())
    )


@pytest.mark.parametrize("path", modules(), ids=_id)
def test_the_code_names_no_issue_numbers(path: Path) -> None:
    found = [
        f"{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ISSUE_REFERENCE.search(line)
    ]
    assert not found, f"{_id(path)} says where something came from, not what it is (the CHANGELOG keeps that): {found}"


def test_the_issue_pattern_catches_references_and_spares_colours() -> None:
    assert ISSUE_REFERENCE.search("the high-volume profile (issue 11)")
    assert ISSUE_REFERENCE.search("fixed in #12.")
    assert not ISSUE_REFERENCE.search('PALETTE = ("#2e7d32", "#c62828")')
    assert not ISSUE_REFERENCE.search("the 24 issues of a release, 3 of them open")


def life_of_a_record_rows(text: str) -> list[tuple[str, str]]:
    """(module, function cell) of each step of the "life of a record" table."""
    section = text.split("\n## Life of a record\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (m := re.fullmatch(r"`(processor/[\w/]+\.py)`", cells[1])):
            rows.append((m[1], cells[2]))
    return rows


def defined_names(path: Path) -> set[str]:
    return {
        node.name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


def test_every_function_the_life_of_a_record_names_is_defined_where_it_says() -> None:
    rows = life_of_a_record_rows(ARCHITECTURE.read_text(encoding="utf-8"))
    assert len(rows) >= 10, "the life of a record table (docs/architecture.md) has lost its steps"
    missing = []
    for module, cell in rows:
        named = [module] + [f"processor/{m}.py" for m in re.findall(r"`((?:core|shard|ops|worker)/\w+)\.", cell)]
        known = set().union(*(defined_names(ROOT / m) for m in named if (ROOT / m).is_file()))
        theirs = set(re.findall(r"amazon_kclpy's `([\w.]+)`", cell))  # the library's own, not ours
        for token in re.findall(r"`([\w/]+(?:\.\w+)*)(?:\([^`]*\))?`", cell):
            if token.split("/")[-1].split(".")[-1] not in known and token not in theirs:
                missing.append(f"{module}: {token}")
    assert not missing, f"the life of a record (docs/architecture.md) names what is not defined there: {missing}"


def write() -> None:
    """Rewrite every code map row from its module's docstring."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    head, section = text.split("\n## Code map\n", 1)
    lines = []
    for line in section.splitlines(keepends=True):
        m = ROW.match(line.rstrip("\n"))
        if m and (ROOT / m[1]).is_file():
            line = f"| `{m[1]}` | {cell(ROOT / m[1])} |\n"
        lines.append(line)
    ARCHITECTURE.write_text(head + "\n## Code map\n" + "".join(lines), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/unit/test_code_map.py --write")
    write()

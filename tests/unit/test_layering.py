"""The architecture, enforced: each layer imports only what it may (docs/architecture.md).

- ``processor.core`` is pure: it imports only itself, the standard library's pure modules and two pure parsers
  (msgpack, orjson); no boto3, botocore, amazon_kclpy, threads, sockets, subprocesses, HTTP or the rest of the
  package.
- ``processor.shard`` (the shard runtime) never imports ``processor.ops`` (the operator CLI) nor
  ``processor.worker`` (the worker runtime that starts the daemon).
- ``processor.worker`` (supervisor, launcher, preflight, daemon log, liveness) never imports ``processor.ops``: the
  worker runs without the operator's commands.
- The product (everything under ``processor``) never imports the workshop (``workshop``: local stack, benchmark,
  fault proxy, protocol driver), so the wheel and the worker image run without it.
Imports are read from the source (every ``import``, also inside functions), not from what happens to be loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "processor"
WORKSHOP = ROOT / "workshop"
CORE_FORBIDDEN = (
    "boto3",
    "botocore",
    "amazon_kclpy",
    "threading",
    "socket",
    "subprocess",
    "concurrent",
    "http",
    "urllib",
    "urllib3",
    "asyncio",
    "multiprocessing",
    "os",
    "signal",
    "select",
)
CORE_ALLOWED_THIRD_PARTY = ("msgpack", "orjson")


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: relative import; write the absolute module path")
            found.add(node.module or "")
    return found


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", modules(PRODUCT / "core"), ids=_id)
def test_the_core_imports_nothing_but_itself_the_pure_standard_library_msgpack_and_orjson(path: Path) -> None:
    for name in imports_of(path):
        if name.startswith("processor"):
            assert under(name, ("processor.core",)), f"{path.name} imports {name}: the core imports only itself"
        else:
            assert not under(name, CORE_FORBIDDEN), f"{path.name} imports {name}: the core does no I/O"
            top = name.split(".")[0]
            assert top == "__future__" or top in CORE_ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names, (
                f"{path.name} imports the third-party {name}"
            )


@pytest.mark.parametrize("path", modules(PRODUCT / "shard"), ids=_id)
def test_the_shard_runtime_never_imports_the_operator_cli(path: Path) -> None:
    bad = [name for name in imports_of(path) if under(name, ("processor.ops", "processor.worker"))]
    assert not bad, f"{_id(path)} imports {bad}: move what both need into processor.core or the top level"


@pytest.mark.parametrize("path", modules(PRODUCT / "worker"), ids=_id)
def test_the_worker_runtime_never_imports_the_operator_cli(path: Path) -> None:
    bad = [name for name in imports_of(path) if under(name, ("processor.ops",))]
    assert not bad, f"{_id(path)} imports {bad}: the worker runs without the operator's commands"


@pytest.mark.parametrize("path", modules(PRODUCT), ids=_id)
def test_the_product_never_imports_the_workshop(path: Path) -> None:
    bad = [name for name in imports_of(path) if under(name, ("workshop",))]
    assert not bad, f"{_id(path)} imports {bad}: the wheel and the worker image hold no workshop module"


def test_the_processor_entry_point_and_the_cli_load_no_workshop_module() -> None:
    """What the daemon starts for every shard, and the operator CLI, on the real import graph of a fresh
    interpreter."""
    code = (
        "import sys, processor.shard.main, processor.ops.cli\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('processor', 'workshop'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "processor.shard.main" in loaded and not [m for m in loaded if under(m, ("workshop",))], loaded


def test_no_module_is_over_500_lines() -> None:
    long = {_id(p): n for p in modules(PRODUCT) + modules(WORKSHOP) if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these by concern: {long}"


def test_the_code_map_lists_every_module_by_its_path() -> None:
    code_map = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        _id(p)
        for p in modules(PRODUCT) + modules(WORKSHOP)
        if p.name != "__init__.py" and f"`{_id(p)}`" not in code_map
    ]
    assert not missing, f"add these to the code map (docs/architecture.md): {missing}"


def test_the_code_map_names_no_module_that_is_gone() -> None:
    import re

    code_map = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:processor|workshop)/[\w/]+\.py)`", code_map))
    gone = sorted(name for name in named if not (ROOT / name).is_file())
    assert not gone, f"the code map (docs/architecture.md) names modules that do not exist: {gone}"

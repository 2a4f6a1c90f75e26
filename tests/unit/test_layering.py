"""The architecture, enforced: each layer imports only what it may (README, "Code map").

- ``processor.core`` is pure: it imports only itself, the standard library's pure modules and two pure parsers
  (msgpack, orjson); no boto3, botocore, amazon_kclpy, threads, sockets, subprocesses, HTTP or the rest of the
  package.
- The production layers (``core``, ``shard``, ``ops`` and the top-level modules) never import the tooling
  layers (``local``, ``loadgen``, ``testing``, ``bench``), so the processor runs without any of them.
Imports are read from the source (every ``import``, also inside functions), not from what happens to be loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "processor"
TOOLING = ("processor.local", "processor.loadgen", "processor.testing", "processor.bench")
CORE_FORBIDDEN = ("boto3", "botocore", "amazon_kclpy", "threading", "socket", "subprocess", "concurrent",
                  "http", "urllib", "urllib3", "asyncio", "multiprocessing", "os", "signal", "select")
CORE_ALLOWED_THIRD_PARTY = ("msgpack", "orjson")


def modules(sub: str = "") -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py")) if sub else sorted(PACKAGE.rglob("*.py"))


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


def production_modules() -> list[Path]:
    tooling_dirs = {PACKAGE / t.split(".")[1] for t in TOOLING}
    return [p for p in modules() if not any(d in p.parents for d in tooling_dirs)]


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: p.name)
def test_the_core_imports_nothing_but_itself_the_pure_standard_library_msgpack_and_orjson(path: Path) -> None:
    for name in imports_of(path):
        if name.startswith("processor"):
            assert under(name, ("processor.core",)), f"{path.name} imports {name}: the core imports only itself"
        else:
            assert not under(name, CORE_FORBIDDEN), f"{path.name} imports {name}: the core does no I/O"
            top = name.split(".")[0]
            assert top == "__future__" or top in CORE_ALLOWED_THIRD_PARTY or _is_stdlib(top), \
                f"{path.name} imports the third-party {name}"


@pytest.mark.parametrize("path", production_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_production_code_never_imports_the_local_stack_load_tooling_testing_or_bench(path: Path) -> None:
    if path.relative_to(PACKAGE).parts[0] == "ops" and path.name == "cli.py":
        return  # the CLI shell registers the dev commands too; nothing in the processor imports it
    bad = [name for name in imports_of(path) if under(name, TOOLING)]
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_the_processor_entry_point_loads_no_tooling_module() -> None:
    """What the daemon starts for every shard, checked on the real import graph of a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys, processor.shard.main\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('processor'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded and not [m for m in loaded if under(m, TOOLING) or m == "processor.ops.cli"], loaded


def test_no_module_is_over_500_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these by concern: {long}"


def _is_stdlib(top: str) -> bool:
    import sys

    return top in sys.stdlib_module_names


def test_the_readme_code_map_lists_every_module_by_its_path() -> None:
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(PACKAGE.parent)) for p in modules()
               if p.name != "__init__.py" and f"`{p.relative_to(PACKAGE.parent)}`" not in readme]
    assert not missing, f"add these to the README's code map: {missing}"

"""What users install holds the product only: the built wheel has every ``processor`` module and no workshop
module (the worker image installs this same wheel; tests/image checks the image itself)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_product_and_no_workshop_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("ecs_state-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n for n in names if n.endswith(".py")}
    product = {str(p.relative_to(ROOT)) for p in (ROOT / "processor").rglob("*.py")}
    assert product <= shipped, f"missing from the wheel: {sorted(product - shipped)}"
    assert not [n for n in names if n.startswith(("workshop/", "tests/"))], [n for n in names if "workshop" in n]
    assert "processor/worker/logback.xml" in names

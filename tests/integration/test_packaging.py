"""What users install holds the product only: the built wheel has every ``processor`` module and no workshop
module (the worker image installs this same wheel; tests/image checks the image itself).

A light CLI: ``pip install .`` gives the operator and read commands; amazon-kclpy (the KCL jars, 33 MB from Maven
Central, and Java to run them) is only in the ``worker`` extra. Without it the read commands still import and run,
and ``ecs-state run`` / ``ecs-state-processor`` say in one line what to install (exit 2). amazon-kclpy is installed
in the test venv, so "not installed" is made real in a subprocess by a ``sys.meta_path`` finder that refuses it
(what Python does when the package is absent: ImportError on import)."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: run before the code under test in a subprocess: amazon_kclpy cannot be imported, as if never installed
BLOCK_KCLPY = """
import sys
class NoKclpy:
    def find_spec(self, name, path=None, target=None):
        if name == "amazon_kclpy" or name.startswith("amazon_kclpy."):
            raise ImportError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoKclpy())
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("ecs_state-*.whl"))


def test_the_wheel_holds_the_product_and_no_workshop_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n for n in names if n.endswith(".py")}
    product = {str(p.relative_to(ROOT)) for p in (ROOT / "processor").rglob("*.py")}
    assert product <= shipped, f"missing from the wheel: {sorted(product - shipped)}"
    assert not [n for n in names if n.startswith(("workshop/", "tests/"))], [n for n in names if "workshop" in n]
    assert "processor/worker/logback.xml" in names


def test_the_wheel_requires_amazon_kclpy_only_with_the_worker_extra(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = email.message_from_bytes(archive.read(metadata_name))
    requires = metadata.get_all("Requires-Dist") or []
    kclpy = [r for r in requires if r.lower().replace("_", "-").startswith("amazon-kclpy")]
    assert kclpy, f"amazon-kclpy is in no requirement at all: {requires}"
    assert all('extra == "worker"' in r for r in kclpy), f"amazon-kclpy outside the worker extra: {kclpy}"
    assert "worker" in (metadata.get_all("Provides-Extra") or [])
    assert [r for r in requires if r.startswith("boto3") and "extra" not in r], requires


def run_without_kclpy(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "x"}
    env["AWS_SECRET_ACCESS_KEY"] = "x"
    return subprocess.run(
        [sys.executable, "-c", BLOCK_KCLPY + code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )


def test_the_blocker_makes_amazon_kclpy_unimportable(tmp_path: Path) -> None:
    done = run_without_kclpy("import amazon_kclpy.kcl\n", tmp_path)
    assert done.returncode == 1 and "ImportError" in done.stderr, done.stderr


def test_every_command_of_the_cli_imports_and_the_read_commands_parse_without_amazon_kclpy(tmp_path: Path) -> None:
    code = (
        "from processor.ops import cli\n"
        "parser = cli.build_parser()\n"
        "for argv in (['tasks', '--help'], ['instances', '--help'], ['why', '--help'], ['status', '--help']):\n"
        "    try:\n"
        "        parser.parse_args(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, argv\n"
        "assert not [m for m in sys.modules if m.startswith('amazon_kclpy')]\n"
        "print('loaded', len(sys.modules))\n"
    )
    done = run_without_kclpy(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "loaded" in done.stdout


def test_ecs_state_run_without_the_worker_extra_says_what_to_install_in_one_line(tmp_path: Path) -> None:
    properties = tmp_path / "worker.properties"
    properties.write_text("streamName = s\napplicationName = a\nexecutableName = ecs-state-processor\n")
    code = f"from processor.ops import cli\nsys.exit(cli.main(['run', '--properties', {str(properties)!r}]))\n"
    done = run_without_kclpy(code, tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "pip install 'ecs-state[worker]'" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_ecs_state_processor_without_the_worker_extra_logs_one_line_and_exits_2(tmp_path: Path) -> None:
    code = "from processor.shard import main\nsys.exit(main.main([]))\n"
    done = run_without_kclpy(code, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "", "the processor's stdout is the protocol's"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'ecs-state[worker]'" in lines[0] and "config_error" in lines[0], lines

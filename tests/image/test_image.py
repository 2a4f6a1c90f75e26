"""The worker container image (Dockerfile, deploy/image/ecs-state-worker, scripts/image): it builds; its entry
point is ``ecs-state run``, as user 10001, on the properties file named by ECS_STATE_PROPERTIES or rendered from
``KCL_<key>`` variables; Java and the KCL jars are in it (nothing is fetched at run time); and the demo verifies
exactly with its KCL worker started from the image (``scripts/image worker``: buildah run, host network, the
demo's folder mounted, ``run`` through the image's entry point).

Marked ``image`` by its folder (slow: ~2 min cold build, ~1.5 min demo). Always runs in CI (CI set), where an image
that cannot be built fails it; elsewhere it is skipped without root, podman and buildah, or with ``-m "not image"``
/ ECS_STATE_IMAGE_TESTS=0. ``buildah run`` stands in for ``docker run`` / ECS because ``podman run`` needs cgroups
this machine's containers lack; it applies neither ENTRYPOINT nor CMD, so the tests run the configured ones.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from processor.config import parse_properties

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("ECS_STATE_TEST_IMAGE", "ecs-state-worker:test")
IMAGE_UID = 10001  # the Dockerfile's USER: mounted folders must be writable for it (daemon log, rendered file)


def _skip_reason() -> str | None:
    if os.environ.get("CI"):
        return None
    if os.environ.get("ECS_STATE_IMAGE_TESTS") == "0":
        return "ECS_STATE_IMAGE_TESTS=0"
    if os.geteuid() != 0:
        return "scripts/image needs root (podman / buildah with chroot isolation)"
    missing = [tool for tool in ("podman", "buildah") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (scripts/image build installs them, as root)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def _run(*args: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=ROOT,
        env={**os.environ, "IMAGE": IMAGE, **(env or {})},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def image() -> str:
    built = _run("scripts/image", "build", timeout=1200)
    assert built.returncode == 0, f"scripts/image build failed:\n{built.stdout[-4000:]}"
    summary = [line for line in built.stdout.splitlines() if line.startswith("image: built")]
    assert summary, built.stdout[-2000:]
    print(summary[-1])
    return IMAGE


@pytest.fixture(scope="module")
def config(image: str) -> dict:
    return json.loads(
        subprocess.run(["podman", "image", "inspect", image], check=True, text=True, stdout=subprocess.PIPE).stdout
    )[0]["Config"]


@pytest.fixture
def container(image: str) -> Iterator[str]:
    ctr = subprocess.run(
        ["buildah", "from", "--quiet", "--pull=never", image], check=True, text=True, stdout=subprocess.PIPE
    ).stdout.strip()
    yield ctr
    subprocess.run(["buildah", "rm", ctr], stdout=subprocess.DEVNULL)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A host folder the image's user may write, mounted into the container at the same path."""
    path = Path(tempfile.mkdtemp(prefix="ecs-state-image-"))
    os.chown(path, IMAGE_UID, -1)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _in_container(ctr: str, config: dict, *env: str, volume: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The image's configured ENTRYPOINT + CMD, as a container runtime would start it."""
    mounts = ["--volume", f"{volume}:{volume}"] if volume else []
    env_args = [arg for pair in env for arg in ("--env", pair)]
    return subprocess.run(
        [
            "buildah",
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            *mounts,
            *env_args,
            ctr,
            "--",
            *config["Entrypoint"],
            *config["Cmd"],
        ],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
    )


def _command_in(ctr: str, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in the container as the image's user, stdout and stderr together."""
    return subprocess.run(
        ["buildah", "run", "--isolation", "chroot", ctr, "--", *command],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_image_runs_ecs_state_run_as_a_non_root_user(config: dict, container: str) -> None:
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert config["Entrypoint"] == ["/usr/local/bin/ecs-state-worker"]
    assert config["Cmd"] == ["--restart-on-failure"]
    assert "ECS_STATE_PROPERTIES=/etc/ecs-state/worker.properties" in config["Env"]
    # Without a properties file and without KCL_* variables `ecs-state run` stops in its preflight (exit 2),
    # naming the file it was given: the default, or the one ECS_STATE_PROPERTIES names.
    for env, expected in (
        ((), "/etc/ecs-state/worker.properties"),
        (("ECS_STATE_PROPERTIES=/mnt/other.properties",), "/mnt/other.properties"),
    ):
        ran = _in_container(container, config, *env)
        assert ran.returncode == 2, ran.stdout
        assert f"properties file {expected} does not exist" in ran.stdout


def test_kcl_variables_render_the_properties_and_java_and_the_jars_are_in_the_image(
    config: dict, container: str, shared_dir: Path
) -> None:
    """No file mounted: the KCL_* variables fill the image's copy of properties/aws.properties. The endpoints
    point at a closed port, so the preflight stops right before Java; that its only complaints are the endpoints
    shows Java, the jars and ecs-state-processor are in the image."""
    rendered = shared_dir / "worker.properties"
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    ran = _in_container(
        container,
        config,
        "KCL_streamName=ecs-state-events",
        "KCL_applicationName=prod-ecs-state",
        "KCL_regionName=eu-west-1",
        f"KCL_kinesisEndpoint={endpoint}",
        f"KCL_dynamoDBEndpoint={endpoint}",
        f"ECS_STATE_RENDERED_PROPERTIES={rendered}",
        volume=shared_dir,
    )
    assert ran.returncode == 2, ran.stdout
    problems = [line for line in ran.stdout.splitlines() if line.startswith("ecs-state run: ")]
    assert len(problems) == 2 and all("does not answer" in line for line in problems), ran.stdout
    assert f"properties {rendered} from /usr/local/share/ecs-state/aws.properties" in ran.stdout

    props = parse_properties(rendered.read_text(encoding="utf-8"))
    template = parse_properties((ROOT / "properties" / "aws.properties").read_text(encoding="utf-8"))
    assert {k: props[k] for k in ("streamName", "applicationName", "regionName", "kinesisEndpoint")} == {
        "streamName": "ecs-state-events",
        "applicationName": "prod-ecs-state",
        "regionName": "eu-west-1",
        "kinesisEndpoint": endpoint,
    }
    untouched = set(template) - {"streamName", "applicationName", "regionName"}
    assert {k: props[k] for k in untouched} == {k: template[k] for k in untouched}
    # each overridden key appears once as a key: the template's line is commented out, not left to "last wins"
    keys = [
        line.split("=", 1)[0].strip()
        for line in rendered.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert keys.count("streamName") == 1


def test_the_health_check_is_in_the_image_and_judges_the_heartbeat_files(
    image: str, config: dict, container: str
) -> None:
    """Docker format keeps HEALTHCHECK (OCI would drop it); the probe runs as the image's user with its
    environment: no worker heartbeat -> 1, a fresh one -> 0, no AWS call either way."""
    inspected = json.loads(
        subprocess.run(["podman", "image", "inspect", image], check=True, text=True, stdout=subprocess.PIPE).stdout
    )[0]
    assert inspected["Healthcheck"]["Test"] == ["CMD", "python", "-m", "processor.worker.liveness"]  # podman: top level
    assert "ECS_STATE_HEARTBEAT_DIR=/tmp/ecs-state/heartbeat" in config["Env"]
    probe = (
        "python -m processor.worker.liveness; echo rc=$?; mkdir -p \"$ECS_STATE_HEARTBEAT_DIR\" && "
        "touch \"$ECS_STATE_HEARTBEAT_DIR/worker\" && python -m processor.worker.liveness; echo rc=$?"
    )
    ran = _command_in(container, "/bin/sh", "-c", probe)
    lines = ran.stdout.splitlines()
    assert lines.count("rc=1") == 1 and lines.count("rc=0") == 1 and lines.index("rc=1") < lines.index("rc=0"), (
        ran.stdout
    )
    assert "no worker heartbeat" in ran.stdout and "healthy: worker alive" in ran.stdout


def test_the_image_holds_the_product_and_no_workshop(container: str) -> None:
    """The worker image installs the wheel: every product package imports, and no workshop module or test is in
    it (the layering test keeps the product from importing them; this keeps them out of what ships)."""
    check = (
        "import importlib.util, processor.shard.main, processor.ops.cli; "
        "print('workshop', importlib.util.find_spec('workshop')); print('tests', importlib.util.find_spec('tests'))"
    )
    ran = _command_in(container, "python", "-c", check)
    assert ran.returncode == 0, ran.stdout
    assert "workshop None" in ran.stdout and "tests None" in ran.stdout, ran.stdout


def test_push_makes_one_manifest_list_of_the_built_image(image: str, tmp_path: Path) -> None:
    """scripts/image push to a dir: destination (no registry is reachable here): the manifest list holds the
    host architecture's image, in Docker v2 schema 2 format (what ECR stores and Fargate pulls)."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    out = tmp_path / "pushed"
    pushed = _run(
        "scripts/image",
        "push",
        "--repository",
        "localhost/ecs-state-worker",
        "--tag",
        "test",
        "--arch",
        arch,
        "--destination",
        f"dir:{out}",
        timeout=600,
    )
    assert pushed.returncode == 0, pushed.stdout[-3000:]
    manifest_list = json.loads((out / "manifest.json").read_text())
    assert manifest_list["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert [m["platform"] for m in manifest_list["manifests"]] == [{"architecture": arch, "os": "linux"}]


def test_demo_verifies_with_a_worker_from_the_image(image: str, shared_dir: Path) -> None:
    """The worker's ``run`` goes through the image's entry point; KCL_maxRecords makes it render the demo's
    properties file, so the worker that verified read the rendered file."""
    rendered = shared_dir / "rendered.properties"
    demo = _run(
        sys.executable,
        "-m",
        "workshop",
        "demo",
        "--events",
        "2000",
        "--shards",
        "2",
        "--work-dir",
        str(shared_dir),
        "--worker-command",
        f"scripts/image worker --volume {shared_dir} --",
        env={"KCL_maxRecords": "500", "ECS_STATE_RENDERED_PROPERTIES": str(rendered)},
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-6000:]
    verified = [line for line in demo.stdout.splitlines() if line.startswith("verified: ")]
    assert verified, demo.stdout[-3000:]
    print(verified[0])
    props = parse_properties(rendered.read_text(encoding="utf-8"))
    assert props["maxRecords"] == "500" and props["streamName"] == "ecs-events"
    # the daemon log was written from inside the image, by its non-root user
    assert (shared_dir / "worker-0.log").stat().st_uid == IMAGE_UID

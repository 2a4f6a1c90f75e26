"""``scripts/image push`` and ``build``'s arguments, without building or pushing (no registry is reachable here):
``push --dry-run`` prints the commands it would run, which is what these tests read. The real push of a manifest
list (to a ``dir:`` destination) is in tests/image, which builds the images it needs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecs-state-worker"
LIST = "localhost/ecs-state-push"  # the push's own local manifest list (REPOSITORY:TAG may be a local image)
LOCAL = "containers-storage:localhost/ecs-state-worker:dev"  # IMAGE=ecs-state-worker:dev, built per architecture


def _image(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["scripts/image", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "IMAGE": "ecs-state-worker:dev"},
    )


def _commands(output: str) -> list[str]:
    return [line.removeprefix("+ ") for line in output.splitlines() if line.startswith("+ ")]


def test_a_push_to_ecr_logs_in_to_the_registrys_region_and_pushes_one_list_of_both_architectures() -> None:
    done = _image("push", "--dry-run", "--repository", ECR, "--tag", "0.1.0")
    assert done.returncode == 0, done.stdout
    assert _commands(done.stdout) == [
        "aws ecr get-login-password --region eu-west-1 | podman login --username AWS --password-stdin "
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        f"podman manifest rm {LIST}:0.1.0",
        f"podman manifest create {LIST}:0.1.0",
        f"podman manifest add --arch amd64 --os linux {LIST}:0.1.0 {LOCAL}-amd64",
        f"podman manifest add --arch arm64 --os linux {LIST}:0.1.0 {LOCAL}-arm64",
        f"podman manifest push --all --format v2s2 {LIST}:0.1.0 docker://{ECR}:0.1.0",
        f"podman manifest rm {LIST}:0.1.0",
    ]
    assert "dry run: would push" in done.stdout


def test_another_destination_needs_no_ecr_login_and_one_architecture_can_be_chosen() -> None:
    done = _image(
        "push", "--dry-run", "--repository", ECR, "--tag", "t", "--arch", "arm64", "--destination", "dir:/tmp/out"
    )
    commands = _commands(done.stdout)
    assert done.returncode == 0 and not any("ecr" in c and "login" in c for c in commands)
    assert [c for c in commands if " add " in c] == [
        f"podman manifest add --arch arm64 --os linux {LIST}:t {LOCAL}-arm64"
    ]
    assert commands[-2] == f"podman manifest push --all --format v2s2 {LIST}:t dir:/tmp/out"


def test_wrong_arguments_are_one_line_and_exit_2() -> None:
    for args, words in (
        (("push", "--dry-run", "--repository", ECR), "--tag"),
        (("push", "--dry-run", "--repository", "ecs-state-worker", "--tag", "1"), "REGISTRY/NAME"),
        (("build", "--arch", "s390x"), "unknown architecture s390x"),
        (("push", "--dry-run", "--bogus"), "unknown argument --bogus"),
    ):
        done = _image(*args)
        assert done.returncode == 2 and words in done.stdout, (args, done.stdout)


def test_a_docker_push_builds_both_architectures_with_buildx_and_pushes_one_docker_format_list() -> None:
    done = _image("docker-push", "--dry-run", "--repository", ECR, "--tag", "0.3.0")
    assert done.returncode == 0, done.stdout
    commands = _commands(done.stdout)
    assert commands[0] == (
        "aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin "
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    )
    assert "docker buildx create --name ecs-state --driver docker-container" in commands
    (build,) = [c for c in commands if c.startswith("docker buildx build ")]
    assert r"--platform linux/amd64\,linux/arm64" in build and "--builder ecs-state" in build
    assert r"type=registry\,name=" + ECR + r":0.3.0\,oci-mediatypes=false" in build
    assert "--provenance=false" in build and build.endswith("-f Dockerfile .")


def test_a_docker_push_of_one_architecture_and_its_wrong_arguments() -> None:
    done = _image("docker-push", "--dry-run", "--repository", ECR, "--tag", "t", "--arch", "arm64")
    (build,) = [c for c in _commands(done.stdout) if c.startswith("docker buildx build ")]
    assert "--platform linux/arm64 " in build
    for args, words in (
        (("docker-push", "--dry-run", "--repository", ECR), "--tag"),
        (("docker-push", "--dry-run", "--repository", ECR, "--tag", "t", "--arch", "s390x"), "unknown architecture"),
        (("docker-push", "--dry-run", "--repository", "ecs-state-worker", "--tag", "1"), "REGISTRY/NAME"),
    ):
        done = _image(*args)
        assert done.returncode == 2 and words in done.stdout, (args, done.stdout)

"""`ecs-state run` before Java starts: finding the processor executable, Java and the KCL jars, and a missing
properties file, each refused with one line naming the fix. On this machine's own Java and amazon_kclpy install."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from processor.errors import EXIT_CONFIG, LaunchError
from processor.worker.launcher import find_jars, find_java
from processor.worker.preflight import check_executable
from processor.worker.supervisor import run_daemon


def test_the_processor_executable_is_found_on_the_given_path(tmp_path: Path) -> None:
    tool = tmp_path / "my-processor"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert check_executable({"executableName": "my-processor --flag"}, "f", str(tmp_path)) == []
    assert check_executable({"executableName": str(tool)}, "f", "") == []
    [problem] = check_executable({"executableName": "my-processor"}, "f", str(tmp_path / "elsewhere"))
    assert "not on PATH" in problem and "scripts/bootstrap" in problem
    tool.chmod(0o644)
    [problem] = check_executable({"executableName": str(tool)}, "f", "")
    assert "not an executable file" in problem


def test_java_is_found_on_path_or_in_java_home(tmp_path: Path) -> None:
    assert os.path.basename(find_java(os.environ)) == "java"
    with pytest.raises(LaunchError, match="JAVA_HOME=.* has no bin/java"):
        find_java({"JAVA_HOME": str(tmp_path), "PATH": os.environ["PATH"]})
    with pytest.raises(LaunchError, match="java not found .* install Java 17"):
        find_java({"PATH": str(tmp_path)})


def test_the_jars_are_found_in_the_installed_amazon_kclpy() -> None:
    jars = find_jars(env={})
    assert any(jars.glob("amazon-kinesis-client-multilang-*.jar"))
    assert any(jars.glob("amazon-kinesis-client-3.*.jar"))


def test_folder_without_jars_is_refused_with_the_reinstall_command(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="no KCL jars in .*pip install --force-reinstall"):
        find_jars(tmp_path, env={})


def test_a_missing_properties_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_daemon(tmp_path / "nope.properties", out=out) == EXIT_CONFIG
    assert "nope.properties does not exist" in out.getvalue()

"""`ecs-state run`: the pure parts of the launcher, its checks, and (marked e2e) the real KCL daemon."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from processor.errors import EXIT_CONFIG, LaunchError
from processor.local.stack import LocalStack
from processor.ops import launcher as daemon
from processor.ops.daemon_log import DaemonWatch
from processor.ops.launcher import (
    MAIN_CLASS,
    daemon_env,
    find_jars,
    find_java,
    java_command,
)
from processor.ops.preflight import check_endpoints, check_executable, check_required
from processor.ops.supervisor import restart_delay, run_daemon

VALID = {"executableName": "ecs-state-processor", "streamName": "s", "applicationName": "a",
         "AwsCredentialsProvider": "DefaultCredentialsProvider"}


# ---- the command line ----------------------------------------------------------------------------------------

def test_java_command_runs_the_multilang_daemon_with_our_logback(tmp_path: Path) -> None:
    props = tmp_path / "conf" / "app.properties"
    jars = tmp_path / "jars"
    logback = tmp_path / "logback.xml"
    cmd = java_command("/opt/java/bin/java", jars, props, logback, "info", ["-Xmx256m"])
    assert cmd[0] == "/opt/java/bin/java"
    assert cmd[1] == "-Xmx256m"  # JVM arguments before the class
    cp = cmd[cmd.index("-cp") + 1]
    assert cp == f"{jars}/*:{props.parent}"
    assert cmd[cmd.index("-cp") + 2] == MAIN_CLASS
    assert cmd[-4:] == ["--properties-file", str(props), "--log-configuration", str(logback)]
    assert "-Decs.kcl.logLevel=INFO" in cmd
    assert "-Decs.kcl.chattyLevel=WARN" in cmd
    assert f"-Dlogback.configurationFile={logback}" in cmd


@pytest.mark.parametrize("given, level, chatty, marker", [
    ("DEBUG", "DEBUG", "DEBUG", "DEBUG"),
    ("warning", "WARN", "WARN", "INFO"),  # markers stay readable above INFO
    ("ERROR", "ERROR", "WARN", "INFO"),
])
def test_log_level_settings(given: str, level: str, chatty: str, marker: str) -> None:
    cmd = java_command("java", Path("/j"), Path("/p/x.properties"), log_level=given)
    assert f"-Decs.kcl.logLevel={level}" in cmd
    assert f"-Decs.kcl.chattyLevel={chatty}" in cmd
    assert f"-Decs.kcl.markerLevel={marker}" in cmd


def test_unknown_log_level_is_refused() -> None:
    with pytest.raises(LaunchError, match="--log-level 'LOUD'"):
        java_command("java", Path("/j"), Path("/p/x.properties"), log_level="loud")


def test_logback_configuration_is_package_data() -> None:
    text = daemon.LOGBACK_XML.read_text()
    assert "${ecs.kcl.logLevel" in text and "System.err" in text


# ---- property checks -----------------------------------------------------------------------------------------

def test_required_keys_present() -> None:
    assert check_required(VALID, "f") == []
    assert check_required({**VALID, "streamName": "", "streamArn": "arn:aws:kinesis:r:1:stream/s"}, "f") == []


@pytest.mark.parametrize("missing, words", [
    ("executableName", "executableName is missing"),
    ("streamName", "neither streamName nor streamArn"),
    ("applicationName", "applicationName is missing"),
    ("AwsCredentialsProvider", "AwsCredentialsProvider = DefaultCredentialsProvider"),
])
def test_each_missing_required_key_is_one_line(missing: str, words: str) -> None:
    props = {k: v for k, v in VALID.items() if k != missing}
    problems = check_required(props, "conf/x.properties")
    assert len(problems) == 1
    assert problems[0].startswith("conf/x.properties: ") and words in problems[0]
    assert check_required({**VALID, missing: ""}, "conf/x.properties") == problems  # empty counts as missing


def test_executable_found_on_the_given_path(tmp_path: Path) -> None:
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


def test_endpoints_that_answer_pass_and_others_name_key_and_fix() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            dead_port = closed.getsockname()[1]  # bound, never listening: connections are refused
            props = {"kinesisEndpoint": f"http://127.0.0.1:{port}",
                     "dynamoDBEndpoint": f"http://127.0.0.1:{dead_port}"}
            problems = check_endpoints(props, "f")
    assert len(problems) == 1
    assert problems[0].startswith(f"f: dynamoDBEndpoint = http://127.0.0.1:{dead_port} does not answer")
    assert "ecs-state stack" in problems[0]
    assert check_endpoints({}, "f") == []  # no endpoints: real AWS, nothing probed
    [bad] = check_endpoints({"kinesisEndpoint": "127.0.0.1:4568"}, "f")
    assert "not an http:// or https:// URL" in bad


def test_daemon_env_points_processors_at_the_same_file_and_services(tmp_path: Path) -> None:
    props = {"dynamoDBEndpoint": "http://127.0.0.1:1", "kinesisEndpoint": "http://127.0.0.1:2",
             "regionName": "eu-west-1"}
    env = daemon_env(props, tmp_path / "x.properties", {"PATH": "/usr/bin:/venv/bin"}, Path("/venv/bin"))
    assert env["ECS_STATE_PROPERTIES"] == str(tmp_path / "x.properties")
    assert env["PATH"] == "/venv/bin:/usr/bin"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:1"
    assert env["AWS_ENDPOINT_URL_KINESIS"] == "http://127.0.0.1:2"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    # Settings the caller already made win.
    kept = daemon_env(props, tmp_path / "x", {"AWS_ENDPOINT_URL_DYNAMODB": "http://other", "AWS_REGION": "r"})
    assert kept["AWS_ENDPOINT_URL_DYNAMODB"] == "http://other" and kept["AWS_REGION"] == "r"
    # No endpoints in the file (AWS): none invented.
    assert "AWS_ENDPOINT_URL_DYNAMODB" not in daemon_env({}, tmp_path / "x", {})


# ---- finding Java and the jars -------------------------------------------------------------------------------

def test_java_from_path_or_java_home(tmp_path: Path) -> None:
    assert os.path.basename(find_java(os.environ)) == "java"
    with pytest.raises(LaunchError, match="JAVA_HOME=.* has no bin/java"):
        find_java({"JAVA_HOME": str(tmp_path), "PATH": os.environ["PATH"]})
    with pytest.raises(LaunchError, match="java not found .* install Java 17"):
        find_java({"PATH": str(tmp_path)})


def test_jars_of_the_installed_amazon_kclpy() -> None:
    jars = find_jars(env={})
    assert any(jars.glob("amazon-kinesis-client-multilang-*.jar"))
    assert any(jars.glob("amazon-kinesis-client-3.*.jar"))


def test_folder_without_jars_is_refused_with_the_reinstall_command(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="no KCL jars in .*pip install --force-reinstall"):
        find_jars(tmp_path, env={})


def test_run_reports_every_problem_before_starting_java(tmp_path: Path) -> None:
    props = tmp_path / "bad.properties"
    props.write_text("executableName = no-such-processor-here\nkinesisEndpoint = http://127.0.0.1:1\n")
    out = io.StringIO()
    code = run_daemon(props, jars=str(tmp_path), out=out)
    lines = out.getvalue().splitlines()
    assert code == EXIT_CONFIG
    assert all(line.startswith("ecs-state run: ") for line in lines)
    text = out.getvalue()
    for words in ("no KCL jars", "neither streamName nor streamArn", "applicationName is missing",
                  "no-such-processor-here is not on PATH", "kinesisEndpoint = http://127.0.0.1:1 does not answer"):
        assert words in text


def test_missing_properties_file(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_daemon(tmp_path / "nope.properties", out=out) == EXIT_CONFIG
    assert "nope.properties does not exist" in out.getvalue()


def test_restart_delay_backs_off_to_30_seconds() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4, 5, 6, 7, 50)] == [1, 2, 4, 8, 16, 30, 30, 30]


# ---- reading the daemon's log --------------------------------------------------------------------------------
# These lines have the daemon's real format and messages (copied from runs of KCL 3.1.3 with
# processor/logback.xml). Synthetic input because the real daemon produces some of them only after 20 failed
# initialisation attempts with random 1-30 s waits each; the e2e test below feeds the real ones.

def _line(level: str, logger: str, message: str) -> str:
    return f"11:22:39.631 {level:<5} [ShardRecordProcessor-0000] {logger} - {message}"


INIT_RESPONSE = _line("INFO", "s.a.k.multilang.MultiLangProtocol",
                      'Received response {"action":"status","responseFor":"initialize"} from subprocess while '
                      'waiting for initialize while processing shard shardId-000000000000')
CONSUMER = _line("INFO", "s.a.kinesis.coordinator.Scheduler",
                 "Created new shardConsumer for : ShardInfo(streamIdentifierSerOpt=Optional.empty, "
                 "shardId=shardId-000000000001, concurrencyToken=fe63, parentShardIds=[], checkpoint={})")


def test_watch_counts_initialised_processors_and_shards() -> None:
    watch = DaemonWatch()
    watch.feed(CONSUMER)
    watch.feed(INIT_RESPONSE)
    assert watch.processors_initialized == 1 and watch.shards == ["shardId-000000000001"]
    assert watch.diagnosis(0, signalled=True) is None
    assert watch.diagnosis(143, signalled=True) is None


def test_watch_explains_exit_0_without_a_processor() -> None:
    watch = DaemonWatch()
    watch.feed(_line("ERROR", "s.a.kinesis.coordinator.Scheduler", "Caught exception when initializing "
                     "LeaseCoordinator"))
    watch.feed("software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException: Stream x not found")
    assert "without ever initialising a record processor" in (watch.diagnosis(0, signalled=False) or "")
    watch.feed(_line("ERROR", "s.a.kinesis.coordinator.Scheduler", "Unable to initialize after 20 attempts. "
                     "Shutting down."))
    assert "KCL gave up initialising" in (watch.diagnosis(0, signalled=False) or "")


def test_watch_explains_a_refused_configuration() -> None:
    watch = DaemonWatch()
    for line in ("java.lang.IllegalArgumentException: No enum constant "
                 "software.amazon.kinesis.common.InitialPositionInStream.BOGUS",
                 "\tat java.base/java.lang.Enum.valueOf(Enum.java:273)",
                 "No enum constant software.amazon.kinesis.common.InitialPositionInStream.BOGUS",
                 "Usage: amazon-kinesis-client MultiLangDaemon [options]",
                 "  Options:"):
        assert watch.feed(line).show == line
    problem = watch.diagnosis(1, signalled=False) or ""
    assert problem.startswith("the KCL daemon refused its configuration: No enum constant")
    assert problem.endswith("InitialPositionInStream.BOGUS; fix that key in the properties file")


def test_watch_explains_a_failed_processor() -> None:
    watch = DaemonWatch()
    watch.feed(INIT_RESPONSE)
    watch.feed(_line("ERROR", "s.a.k.m.MultiLangShardRecordProcessor",
                     "Encountered an error while trying to process records"))
    problem = watch.diagnosis(1, signalled=False) or ""
    assert "exited 1" in problem and "record processor failed" in problem and "--restart-on-failure" in problem


def test_watch_shows_by_level_and_keeps_stack_traces_with_their_line() -> None:
    watch = DaemonWatch(show_level="WARN")
    assert watch.feed(CONSUMER).show is None  # INFO hidden at WARN, still counted
    assert watch.feed("\tat software.amazon.Foo(Foo.java:1)").show is None  # continuation of a hidden line
    error = _line("ERROR", "s.a.k.m.MultiLangDaemon", "Encountered an error during shutdown.")
    assert watch.feed(error).show == error
    assert watch.feed("java.util.concurrent.TimeoutException: null").show is not None
    assert watch.consumers_created == 1


def test_protocol_lines_only_at_debug() -> None:
    assert DaemonWatch(show_level="INFO").feed(INIT_RESPONSE).show is None
    assert DaemonWatch(show_level="DEBUG").feed(INIT_RESPONSE).show == INIT_RESPONSE


def test_processor_stderr_is_shown_once_unwrapped() -> None:
    # The daemon logs a processor's stderr line and then prints the same line raw: show it once.
    watch = DaemonWatch(show_level="WARN")
    raw = '{"level":"INFO","event":"flushed","shard":"shardId-0"}'
    logged = _line("ERROR", "s.a.k.multilang.DrainChildSTDERRTask",
                   f"Received error line from subprocess [{raw}] for shard shardId-0")
    other = _line("INFO", "s.a.k.m.MultiLangDaemonConfig", "from another thread, between the two copies")
    assert watch.feed(logged) == (raw, True)
    assert watch.feed(other) == (None, True)
    assert watch.feed(raw) == (None, False)  # the raw copy: neither shown nor written to the log file
    assert watch.last_error is None  # a processor's log line is not a daemon error
    traceback = "Traceback (most recent call last):"
    assert watch.feed(_line("ERROR", "s.a.k.multilang.DrainChildSTDERRTask",
                            f"Received error line from subprocess [{traceback}] for shard shardId-0")).show == traceback


# ---- the real daemon (slow) ----------------------------------------------------------------------------------

PROBE_PROCESSOR = '''\
"""Test processor: appends one JSON line per event to $PROBE_LOG; checkpoints every batch."""
import json, os, time
from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor


def note(**fields):
    with open(os.environ["PROBE_LOG"], "a") as f:
        f.write(json.dumps({"t": time.time(), **fields}) + "\\n")


class Probe(processor.RecordProcessorBase):
    def initialize(self, i):
        self.shard = i.shard_id
        note(ev="initialize", shard=self.shard)

    def process_records(self, p):
        if p.records:
            note(ev="records", shard=self.shard, data=[r.binary_data.decode() for r in p.records])
            p.checkpointer.checkpoint(p.records[-1].sequence_number, p.records[-1].sub_sequence_number)
            note(ev="checkpointed", shard=self.shard)

    def lease_lost(self, _):
        note(ev="leaseLost", shard=self.shard)

    def shard_ended(self, s):
        s.checkpointer.checkpoint()

    def shutdown_requested(self, s):
        note(ev="shutdownRequested", shard=self.shard)
        s.checkpointer.checkpoint()
        note(ev="shutdownCheckpointed", shard=self.shard)


kcl.KCLProcess(Probe()).run()
'''


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.e2e
def test_real_daemon_processes_records_and_shuts_down_gracefully_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "probe_processor.py"
    script.write_text(f"#!{sys.executable}\n" + PROBE_PROCESSOR)
    script.chmod(0o755)
    probe_log = tmp_path / "probe.jsonl"
    daemon_log = tmp_path / "daemon.log"
    with LocalStack(tmp_path / "stack") as stack:
        stack.create_stream("ecs-events", 2)
        kinesis = stack.client("kinesis")
        sent = {f"record-{i}" for i in range(6)}
        for data in sent:
            kinesis.put_record(StreamName="ecs-events", Data=data.encode(), PartitionKey=data)
        props = stack.render_properties(executableName=str(script))
        env = {**stack.child_env(), "PROBE_LOG": str(probe_log)}
        launcher = subprocess.Popen([sys.executable, "-m", "processor", "run", "--properties", str(props),
                                     "--daemon-log", str(daemon_log)],
                                    env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "run.err", "w"))
        try:
            # KCL waits a random 1-30 s on an empty lease table, then assigns leases: allow for it.
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and launcher.poll() is None:
                events = _events(probe_log)
                seen = {d for e in events if e["ev"] == "records" for d in e["data"]}
                if seen == sent and sum(e["ev"] == "checkpointed" for e in events) >= 2:
                    break
                time.sleep(0.5)
            events = _events(probe_log)
            assert {e["shard"] for e in events if e["ev"] == "initialize"} == \
                {"shardId-000000000000", "shardId-000000000001"}, (tmp_path / "run.err").read_text()[-3000:]
            assert {d for e in events if e["ev"] == "records" for d in e["data"]} == sent
        finally:
            launcher.send_signal(signal.SIGTERM)
            code = launcher.wait(120)
    events = _events(probe_log)
    assert code == 128 + signal.SIGTERM  # the daemon's own exit code after a SIGTERM
    assert {e["shard"] for e in events if e["ev"] == "shutdownCheckpointed"} == \
        {"shardId-000000000000", "shardId-000000000001"}
    run_err = (tmp_path / "run.err").read_text()
    assert '"event":"daemon.exited"' in run_err and '"processors_initialized":2' in run_err
    assert "Created new shardConsumer" in daemon_log.read_text()


def test_a_daemon_killed_by_a_signal_is_reported_as_such() -> None:
    from processor.ops.daemon_log import DaemonWatch

    problem = DaemonWatch(show_level="INFO").diagnosis(-9, signalled=False)
    assert problem is not None and "killed by SIGKILL" in problem

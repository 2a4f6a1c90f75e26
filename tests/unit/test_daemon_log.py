"""The daemon's log classifier (DaemonWatch): what the KCL daemon's lines say, pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.errors import LaunchError
from processor.worker import launcher as daemon
from processor.worker.daemon_log import DaemonWatch
from processor.worker.launcher import MAIN_CLASS, daemon_env, java_command
from processor.worker.preflight import check_required
from processor.worker.supervisor import restart_delay

VALID = {
    "executableName": "ecs-state-processor",
    "streamName": "s",
    "applicationName": "a",
    "AwsCredentialsProvider": "DefaultCredentialsProvider",
}


def _line(level: str, logger: str, message: str) -> str:
    return f"11:22:39.631 {level:<5} [ShardRecordProcessor-0000] {logger} - {message}"


INIT_RESPONSE = _line(
    "INFO",
    "s.a.k.multilang.MultiLangProtocol",
    'Received response {"action":"status","responseFor":"initialize"} from subprocess while '
    'waiting for initialize while processing shard shardId-000000000000',
)


CONSUMER = _line(
    "INFO",
    "s.a.kinesis.coordinator.Scheduler",
    "Created new shardConsumer for : ShardInfo(streamIdentifierSerOpt=Optional.empty, "
    "shardId=shardId-000000000001, concurrencyToken=fe63, parentShardIds=[], checkpoint={})",
)


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


@pytest.mark.parametrize(
    "given, level, chatty, marker",
    [
        ("DEBUG", "DEBUG", "DEBUG", "DEBUG"),
        ("warning", "WARN", "WARN", "INFO"),  # markers stay readable above INFO
        ("ERROR", "ERROR", "WARN", "INFO"),
    ],
)
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


def test_required_keys_present() -> None:
    assert check_required(VALID, "f") == []
    assert check_required({**VALID, "streamName": "", "streamArn": "arn:aws:kinesis:r:1:stream/s"}, "f") == []


@pytest.mark.parametrize(
    "missing, words",
    [
        ("executableName", "executableName is missing"),
        ("streamName", "neither streamName nor streamArn"),
        ("applicationName", "applicationName is missing"),
        ("AwsCredentialsProvider", "AwsCredentialsProvider = DefaultCredentialsProvider"),
    ],
)
def test_each_missing_required_key_is_one_line(missing: str, words: str) -> None:
    props = {k: v for k, v in VALID.items() if k != missing}
    problems = check_required(props, "conf/x.properties")
    assert len(problems) == 1
    assert problems[0].startswith("conf/x.properties: ") and words in problems[0]
    assert check_required({**VALID, missing: ""}, "conf/x.properties") == problems  # empty counts as missing


def test_daemon_env_points_processors_at_the_same_file_and_services(tmp_path: Path) -> None:
    props = {
        "dynamoDBEndpoint": "http://127.0.0.1:1",
        "kinesisEndpoint": "http://127.0.0.1:2",
        "regionName": "eu-west-1",
    }
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


def test_restart_delay_backs_off_to_30_seconds() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4, 5, 6, 7, 50)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_watch_counts_initialised_processors_and_shards() -> None:
    watch = DaemonWatch()
    watch.feed(CONSUMER)
    watch.feed(INIT_RESPONSE)
    assert watch.processors_initialized == 1 and watch.shards == ["shardId-000000000001"]
    assert watch.diagnosis(0, signalled=True) is None
    assert watch.diagnosis(143, signalled=True) is None


def test_watch_explains_exit_0_without_a_processor() -> None:
    watch = DaemonWatch()
    watch.feed(
        _line("ERROR", "s.a.kinesis.coordinator.Scheduler", "Caught exception when initializing LeaseCoordinator")
    )
    watch.feed("software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException: Stream x not found")
    assert "without ever initialising a record processor" in (watch.diagnosis(0, signalled=False) or "")
    watch.feed(
        _line("ERROR", "s.a.kinesis.coordinator.Scheduler", "Unable to initialize after 20 attempts. Shutting down.")
    )
    assert "KCL gave up initialising" in (watch.diagnosis(0, signalled=False) or "")


def test_watch_explains_a_refused_configuration() -> None:
    watch = DaemonWatch()
    for line in (
        "java.lang.IllegalArgumentException: No enum constant "
        "software.amazon.kinesis.common.InitialPositionInStream.BOGUS",
        "\tat java.base/java.lang.Enum.valueOf(Enum.java:273)",
        "No enum constant software.amazon.kinesis.common.InitialPositionInStream.BOGUS",
        "Usage: amazon-kinesis-client MultiLangDaemon [options]",
        "  Options:",
    ):
        assert watch.feed(line).show == line
    problem = watch.diagnosis(1, signalled=False) or ""
    assert problem.startswith("the KCL daemon refused its configuration: No enum constant")
    assert problem.endswith("InitialPositionInStream.BOGUS; fix that key in the properties file")


def test_watch_explains_a_failed_processor() -> None:
    watch = DaemonWatch()
    watch.feed(INIT_RESPONSE)
    watch.feed(
        _line("ERROR", "s.a.k.m.MultiLangShardRecordProcessor", "Encountered an error while trying to process records")
    )
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
    logged = _line(
        "ERROR",
        "s.a.k.multilang.DrainChildSTDERRTask",
        f"Received error line from subprocess [{raw}] for shard shardId-0",
    )
    other = _line("INFO", "s.a.k.m.MultiLangDaemonConfig", "from another thread, between the two copies")
    assert watch.feed(logged) == (raw, True)
    assert watch.feed(other) == (None, True)
    assert watch.feed(raw) == (None, False)  # the raw copy: neither shown nor written to the log file
    assert watch.last_error is None  # a processor's log line is not a daemon error
    traceback = "Traceback (most recent call last):"
    assert (
        watch.feed(
            _line(
                "ERROR",
                "s.a.k.multilang.DrainChildSTDERRTask",
                f"Received error line from subprocess [{traceback}] for shard shardId-0",
            )
        ).show
        == traceback
    )


def test_an_emf_line_of_a_processor_reaches_our_stderr_as_exactly_the_json_object() -> None:
    """CloudWatch extracts metrics only from a log event that is the EMF object itself: the daemon's wrapper
    (at ERROR, whatever the line says) must come off, brackets inside the JSON included."""
    import json

    from processor.shard.metrics import emf_record

    emf = json.dumps(
        emf_record("shardId-000000000007", {"records": 3, "writes": 2}, 1_800_000_000_000, application="ecs-state"),
        separators=(",", ":"),
    )
    assert "]" in emf  # the dimension sets: the unwrapping must not stop at the first bracket
    watch = DaemonWatch(show_level="WARN")
    logged = _line(
        "ERROR",
        "s.a.k.multilang.DrainChildSTDERRTask",
        f"Received error line from subprocess [{emf}] for shard shardId-000000000007",
    )
    assert watch.feed(logged).show == emf
    assert watch.feed(emf).show is None


def test_a_daemon_killed_by_a_signal_is_reported_as_such() -> None:
    problem = DaemonWatch(show_level="INFO").diagnosis(-9, signalled=False)
    assert problem is not None and "killed by SIGKILL" in problem

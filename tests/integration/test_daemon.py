"""`ecs-state run` with real parts: the endpoint probe over loopback sockets, every problem reported before Java
starts, and (marked e2e) the real KCL daemon. The pure checks: tests/unit/test_launcher.py."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from processor.config import load_settings
from processor.errors import EXIT_CONFIG
from processor.ops.setup_tables import ensure_tables
from processor.worker.preflight import check_endpoints
from processor.worker.supervisor import run_daemon
from workshop.local.stack import LocalStack


def test_endpoints_that_answer_pass_and_others_name_key_and_fix() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            dead_port = closed.getsockname()[1]  # bound, never listening: connections are refused
            props = {"kinesisEndpoint": f"http://127.0.0.1:{port}", "dynamoDBEndpoint": f"http://127.0.0.1:{dead_port}"}
            problems = check_endpoints(props, "f")
    assert len(problems) == 1
    assert problems[0].startswith(f"f: dynamoDBEndpoint = http://127.0.0.1:{dead_port} does not answer")
    assert "python -m workshop stack" in problems[0]
    assert check_endpoints({}, "f") == []  # no endpoints: real AWS, nothing probed
    [bad] = check_endpoints({"kinesisEndpoint": "127.0.0.1:4568"}, "f")
    assert "not an http:// or https:// URL" in bad


def test_run_reports_every_problem_before_starting_java(tmp_path: Path) -> None:
    props = tmp_path / "bad.properties"
    props.write_text("executableName = no-such-processor-here\nkinesisEndpoint = http://127.0.0.1:1\n")
    out = io.StringIO()
    code = run_daemon(props, jars=str(tmp_path), out=out)
    lines = out.getvalue().splitlines()
    assert code == EXIT_CONFIG
    assert all(line.startswith("ecs-state run: ") for line in lines)
    text = out.getvalue()
    for words in (
        "no KCL jars",
        "neither streamName nor streamArn",
        "applicationName is missing",
        "no-such-processor-here is not on PATH",
        "kinesisEndpoint = http://127.0.0.1:1 does not answer",
    ):
        assert words in text


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
        # `ecs-state run` checks the processor's tables before Java starts (preflight), whatever the executable.
        ensure_tables(load_settings(props, env={}), stack.client("dynamodb"))
        env = {**stack.child_env(), "PROBE_LOG": str(probe_log)}
        launcher = subprocess.Popen(
            [sys.executable, "-m", "processor", "run", "--properties", str(props), "--daemon-log", str(daemon_log)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "run.err", "w"),
        )
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
            assert {e["shard"] for e in events if e["ev"] == "initialize"} == {
                "shardId-000000000000",
                "shardId-000000000001",
            }, (tmp_path / "run.err").read_text()[-3000:]
            assert {d for e in events if e["ev"] == "records" for d in e["data"]} == sent
        finally:
            launcher.send_signal(signal.SIGTERM)
            code = launcher.wait(120)
    events = _events(probe_log)
    assert code == 128 + signal.SIGTERM  # the daemon's own exit code after a SIGTERM
    assert {e["shard"] for e in events if e["ev"] == "shutdownCheckpointed"} == {
        "shardId-000000000000",
        "shardId-000000000001",
    }
    run_err = (tmp_path / "run.err").read_text()
    assert '"event":"daemon.exited"' in run_err and '"processors_initialized":2' in run_err
    assert "Created new shardConsumer" in daemon_log.read_text()

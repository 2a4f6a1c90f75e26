"""Helpers for tests/e2e/test_e2e.py: the real KCL MultiLangDaemon (``ecs-state run``) with our processor, on the
embedded local stack (moto + kinesis-mock).

- :class:`Feed` writes generated ECS events (:func:`processor.loadgen.fleet.generate`) to a stream with the producer's
  :class:`~processor.loadgen.producer.KinesisWriter`, keeps the ground truth
  (:class:`~processor.loadgen.ground_truth.GroundTruth`) and
  remembers which shard and sequence number Kinesis gave every record (to know each shard's last record).
- :class:`Launcher` is one ``ecs-state run`` process: its stderr carries the launcher's and the processors' JSON
  log lines (the launcher passes the processors' stderr through), ``--daemon-log`` the daemon's whole log.
- :class:`Scenario` ties one test together: names (stream, applicationName, tables), properties, launchers, and
  :meth:`Scenario.wait` (poll with a deadline); when the test fails it prints the tail of every daemon log and the
  processors' warnings and errors, so that a CI failure can be diagnosed from the pytest output alone.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from processor.config import Settings, load_settings
from processor.loadgen.compare import Report, compare
from processor.loadgen.fleet import generate
from processor.loadgen.ground_truth import GroundTruth
from processor.loadgen.producer import KinesisWriter, Pacer, produce
from processor.loadgen.records import Options, Record
from processor.loadgen.verify import read_tables
from processor.ops.setup_tables import ensure_tables
from processor.shard.flush_report import EVENT as FLUSH_EVENT
from processor.shard.flush_report import FlushReport
from processor.worker.supervisor import die_with_parent
from workshop.local.env import local_client
from workshop.local.stack import LocalStack, wait_stream_active

T = TypeVar("T")

ECS_STATE = Path(sys.executable).with_name("ecs-state")
#: Written by the KCL lease table for a shard that was read to its end and checkpointed there.
SHARD_END = "SHARD_END"
#: KCL 3's migration mode (2.x-compatible lease handling): only the failover benchmark runs it, for comparison.
COMPATIBLE_WITH_2X = "CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X"


class E2EFailure(AssertionError):
    """A waited-for state did not come in time (the message says which and what was seen last)."""


# ---- the producer side ----------------------------------------------------------------------------------------


class RecordingKinesis:
    """A boto3 Kinesis client that remembers the shard and sequence number of every record PutRecords accepted
    (everything else is passed through)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sequences: dict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()

    def put_records(self, **kwargs: Any) -> Any:
        response = self._client.put_records(**kwargs)
        with self._lock:
            for result in response["Records"]:
                if "SequenceNumber" in result:
                    self.sequences[result["ShardId"]].append(result["SequenceNumber"])
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def producer_client(stack: LocalStack) -> Any:
    """A Kinesis client for writing test records: one attempt per call (a PutRecords retried by botocore after a
    read timeout may have been applied already, which would write records twice behind the ground truth's back;
    the producer's KinesisWriter retries only entries reported failed) and a long read timeout (kinesis-mock
    takes seconds per 500-record call once a shard holds thousands of records)."""

    return local_client(
        "kinesis",
        stack.kinesis_endpoint,
        stack.region,
        connect_timeout=10,
        read_timeout=300,
        retries={"mode": "standard", "total_max_attempts": 1},
    )


class Feed:
    """Generated ECS events for one stream, sent in as many rounds as a test needs; one ground truth for all."""

    def __init__(self, stack: LocalStack, stream: str, options: Options) -> None:
        self.stream = stream
        self.kinesis = RecordingKinesis(producer_client(stack))
        self.writer = KinesisWriter(self.kinesis, stream)
        self.truth = GroundTruth(meta={"stream": stream})
        self._records: Iterator[Record] = generate(options)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._highest: dict[str, int] = {}
        self.errors: list[BaseException] = []
        #: task / instance events written after a newer version of the same ARN (the stream's real reordering)
        self.out_of_order = 0

    def send(self, count: int, rate: float = 0.0) -> None:
        """Send the next ``count`` generated records (``rate`` records/s, 0 = as fast as Kinesis takes them)."""
        with self._lock:
            produce(itertools.islice(self._records, count), self._put, pacer=Pacer(rate), truth=self.truth)

    def _put(self, batch: list[Record]) -> None:
        self.writer.put(batch)
        for rec in batch:
            if rec.kind in ("task", "instance"):
                highest = self._highest.get(rec.arn)
                if highest is not None and rec.version < highest:
                    self.out_of_order += 1
                if highest is None or rec.version > highest:
                    self._highest[rec.arn] = rec.version

    def send_in_background(self, count: int, rate: float) -> threading.Thread:
        """``send`` on a thread (join it with :meth:`join`); an error is kept in ``errors``."""

        def run() -> None:
            try:
                self.send(count, rate)
            except BaseException as exc:  # noqa: BLE001 - reported by join()
                self.errors.append(exc)

        thread = threading.Thread(target=run, name=f"feed-{self.stream}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def join(self, timeout_s: float = 600) -> None:
        for thread in self._threads:
            thread.join(timeout_s)
            if thread.is_alive():
                raise E2EFailure(f"producing to {self.stream} did not finish within {timeout_s:.0f}s")
        if self.errors:
            raise self.errors[0]

    @property
    def sent(self) -> int:
        return int(self.truth.totals["records"])

    def last_sequence(self) -> dict[str, str]:
        """shard id -> sequence number of the last record written to it."""
        return {shard: max(seqs, key=int) for shard, seqs in self.kinesis.sequences.items() if seqs}

    def count_after(self, shard: str, sequence: str) -> int:
        """Records written to ``shard`` with a sequence number after ``sequence``."""
        return sum(int(s) > int(sequence) for s in self.kinesis.sequences.get(shard, []))

    def truth_dict(self) -> dict[str, Any]:
        return self.truth.to_dict()


# ---- the lease table --------------------------------------------------------------------------------------------


def _plain(value: Mapping[str, Any]) -> Any:
    ((kind, raw),) = value.items()
    if kind == "N":
        return Decimal(raw)
    if kind in ("SS", "NS"):
        return sorted(raw)
    return raw


def leases(dynamodb: Any, application: str) -> dict[str, dict[str, Any]]:
    """The KCL lease table of ``application`` (named after it): shard id -> lease item as plain values
    (``checkpoint``, ``checkpointSubSequenceNumber``, ``leaseOwner``, ``parentShardId`` ...). Empty while the
    table does not exist yet."""
    try:
        pages = dynamodb.get_paginator("scan").paginate(TableName=application, ConsistentRead=True)
        return {
            item["leaseKey"]["S"]: {k: _plain(v) for k, v in item.items()}
            for page in pages
            for item in page.get("Items", [])
        }
    except dynamodb.exceptions.ResourceNotFoundException:
        return {}


def checkpoints(dynamodb: Any, application: str) -> dict[str, str]:
    """shard id -> checkpoint (a sequence number, TRIM_HORIZON, LATEST or SHARD_END)."""
    return {shard: str(lease.get("checkpoint")) for shard, lease in leases(dynamodb, application).items()}


def leader(dynamodb: Any, application: str) -> str | None:
    """The workerId holding KCL 3's leader lock: ``ownerName`` of the lock item in ``<app>-CoordinatorState``
    (None: no such table or no lock yet)."""
    try:
        items = dynamodb.scan(TableName=f"{application}-CoordinatorState")["Items"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return None
    return next((item["ownerName"]["S"] for item in items if "ownerName" in item), None)


def owners(dynamodb: Any, application: str) -> dict[str, str | None]:
    """shard id -> leaseOwner (None while unassigned)."""
    return {shard: lease.get("leaseOwner") for shard, lease in leases(dynamodb, application).items()}


# ---- one `ecs-state run` --------------------------------------------------------------------------------------


@dataclass
class Launcher:
    """One ``ecs-state run --properties FILE`` process, its stderr (launcher + processor JSON lines) in
    ``<name>.stderr`` and the daemon's log in ``<name>.daemon.log``."""

    name: str
    properties: Path
    env: dict[str, str]
    workdir: Path
    restart_on_failure: bool = False
    proc: subprocess.Popen[bytes] | None = None
    _offset: int = 0
    _lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"{self.name}.stderr"

    @property
    def daemon_log(self) -> Path:
        return self.workdir / f"{self.name}.daemon.log"

    def start(self) -> Launcher:
        command = [str(ECS_STATE), "run", "--properties", str(self.properties), "--daemon-log", str(self.daemon_log)]
        if self.restart_on_failure:
            command.append("--restart-on-failure")
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=die_with_parent(),
            )
        return self

    # -- what it logged

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (launcher and processors), in order; read incrementally."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return self._lines
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for raw in chunk[:end].splitlines():
            text = raw.decode("utf-8", "replace").strip()
            if text.startswith("{"):
                try:
                    self._lines.append(json.loads(text))
                except json.JSONDecodeError:
                    pass
        return self._lines

    def events(self, event: str, shard: str | None = None) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines()
            if line.get("event") == event and (shard is None or line.get("shard") == shard)
        ]

    def flushes(self, shard: str | None = None, since: float = 0.0) -> list[FlushReport]:
        """The processors' flush reports (``since``: wall-clock time, the line's ``ts``)."""
        return [FlushReport.from_fields(line) for line in self.events(FLUSH_EVENT, shard) if line.get("ts", 0) >= since]

    def initialized(self, since: float = 0.0) -> dict[str, list[dict[str, Any]]]:
        """shard id -> the processors' ``initialize`` lines for it."""
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in self.events("initialize"):
            if line.get("ts", 0) >= since:
                found[line["shard"]].append(line)
        return dict(found)

    def process_records_calls(self, shard: str) -> int:
        """How many ``processRecords`` calls the daemon finished for ``shard`` (its MultiLangProtocol INFO lines;
        KCL also calls with no records: ``callProcessRecordsEvenForEmptyRecordList``)."""
        marker = '"responseFor":"processRecords"'
        return sum(marker in line and line.endswith(f" shard {shard}") for line in self.daemon_text().splitlines())

    def daemon_text(self) -> str:
        try:
            return self.daemon_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- the processes

    def java_pids(self) -> list[int]:
        """Pids of every Java daemon the launcher started (its ``daemon.started`` lines), oldest first."""
        return [int(line["pid"]) for line in self.events("daemon.started")]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sigterm(self) -> None:
        """SIGTERM to ``ecs-state run``: it forwards it to the Java process only (graceful shutdown)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def kill_daemon(self) -> int:
        """SIGKILL the current Java daemon and its children (the record processors, in its process group: the
        launcher starts Java in a session of its own); returns the Java pid. The launcher itself lives on."""
        pid = self.java_pids()[-1]
        os.killpg(pid, signal.SIGKILL)
        return pid

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        """Kill whatever still runs (cleanup): Java groups first, so the launcher cannot start a graceful stop."""
        if self.proc is None:
            return
        for pid in self.java_pids():
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass

    def diagnostics(self, daemon_lines: int = 60, processor_lines: int = 40) -> str:
        """The tail of the daemon log, the launcher's lines and the processors' non-INFO lines (plus the last
        flushes), for a failure message."""
        parts = [f"==== {self.name}: exit code {self.proc.poll() if self.proc else None}, {self.properties}"]
        # Stack frames dropped: the exception line above them says what happened, and the frames would push
        # everything else out of the tail.
        tail = [line for line in self.daemon_text().splitlines() if not line.startswith("\tat ")][-daemon_lines:]
        parts.append(f"---- {self.name}: last {len(tail)} lines of {self.daemon_log} (without stack frames)")
        parts.extend(tail)
        lines = self.lines()
        launcher = [line for line in lines if str(line.get("event", "")).startswith("daemon.")]
        notable = [
            line
            for line in lines
            if line.get("level") not in ("INFO", None)
            or line.get("event") in ("initialize", "shutdown", "shard_end", "lease_lost")
        ]
        flushes = [line for line in lines if line.get("event") == "flush"]
        parts.append(f"---- {self.name}: launcher lines")
        parts.extend(json.dumps(line) for line in launcher[-20:])
        parts.append(f"---- {self.name}: processor lines other than flush (last {processor_lines})")
        parts.extend(json.dumps(line) for line in notable[-processor_lines:])
        parts.append(f"---- {self.name}: last flushes ({len(flushes)} in all)")
        parts.extend(json.dumps(line) for line in flushes[-8:])
        return "\n".join(parts)


# ---- one test -------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One end-to-end test: its own stream, applicationName and tables on the shared stack."""

    stack: LocalStack
    name: str
    workdir: Path
    launchers: list[Launcher] = field(default_factory=list)
    feeds: list[Feed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dynamodb = self.stack.client("dynamodb")
        self.kinesis = self.stack.client("kinesis")
        self.stream = f"{self.name}-events"
        self.application = f"{self.name}-app"
        self.settings = Settings(
            task_table=f"{self.name}-tasks",
            instance_table=f"{self.name}-instances",
            dead_letter_table=f"{self.name}-dead-letters",
        )
        ensure_tables(self.settings, self.dynamodb)

    def __enter__(self) -> Scenario:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is not None:
                print(self.diagnostics())
        finally:
            for launcher in self.launchers:
                launcher.stop()

    # -- set-up

    def create_stream(self, shards: int) -> None:
        self.stack.create_stream(self.stream, shards)

    def feed(self, options: Options) -> Feed:
        feed = Feed(self.stack, self.stream, options)
        self.feeds.append(feed)
        return feed

    def properties(
        self, label: str, application: str | None = None, flush_interval_millis: int = 2000, **overrides: str
    ) -> Path:
        """A rendered local.properties for this scenario's stream and tables (own folder: the daemon puts it on
        its classpath). ``overrides`` are further KCL keys (e.g. ``workerId``, ``clientVersionConfig``)."""
        values = {
            "streamName": self.stream,
            "applicationName": application or self.application,
            "ecsState.taskTable": self.settings.task_table,
            "ecsState.instanceTable": self.settings.instance_table,
            "ecsState.deadLetterTable": self.settings.dead_letter_table,
            "ecsState.flushIntervalMillis": str(flush_interval_millis),
            **overrides,
        }
        path = self.stack.render_properties(dest=self.workdir / label / "local.properties", **values)
        assert load_settings(path, env={}).task_table == self.settings.task_table
        return path

    def launcher(
        self, label: str, properties: Path, env: Mapping[str, str] | None = None, restart_on_failure: bool = False
    ) -> Launcher:
        """Start ``ecs-state run`` (``env``: extra variables for it, the daemon and the processors)."""
        launcher = Launcher(
            label, properties, {**self.stack.child_env(), **(env or {})}, self.workdir, restart_on_failure
        ).start()
        self.launchers.append(launcher)
        return launcher

    # -- waiting

    def wait(
        self,
        what: str,
        probe: Callable[[], T | None],
        timeout_s: float,
        interval_s: float = 1.0,
        alive: list[Launcher] | None = None,
    ) -> T:
        """Call ``probe`` every ``interval_s`` until it returns something truthy (returned) or ``timeout_s``
        passes (E2EFailure naming ``what``). Fails at once when a launcher in ``alive`` has exited."""
        deadline = time.monotonic() + timeout_s
        begun = time.monotonic()
        while True:
            value = probe()
            if value:
                self.note(f"{what}: {time.monotonic() - begun:.1f}s")
                return value
            for launcher in alive or ():
                if not launcher.alive():
                    raise E2EFailure(
                        f"{launcher.name} exited ({launcher.proc.poll() if launcher.proc else None}) "
                        f"while waiting for: {what}"
                    )
            if time.monotonic() >= deadline:
                raise E2EFailure(f"not within {timeout_s:.0f}s: {what} (last probe: {value!r})")
            time.sleep(interval_s)

    def report(self, truth: Mapping[str, Any]) -> Report:
        return compare(truth, *read_tables(self.settings, self.dynamodb))

    def wait_exact(self, feed: Feed, timeout_s: float, alive: list[Launcher] | None = None) -> Report:
        """Poll the tables until they equal ``feed``'s ground truth exactly (processor.loadgen.verify)."""
        last: list[Report] = []

        def probe() -> Report | None:
            report = self.report(feed.truth_dict())
            last[:] = [report]
            return report if report.ok else None

        try:
            return self.wait("tables equal the ground truth", probe, timeout_s, 2.0, alive)
        except E2EFailure as exc:
            raise E2EFailure(f"{exc}\n{last[0].render() if last else ''}") from None

    def wait_checkpointed(
        self, feed: Feed, application: str | None = None, timeout_s: float = 120, alive: list[Launcher] | None = None
    ) -> dict[str, str]:
        """Poll the lease table until every shard written to is checkpointed at its last record."""
        application = application or self.application

        def probe() -> dict[str, str] | None:
            want = feed.last_sequence()
            have = checkpoints(self.dynamodb, application)
            return have if all(have.get(shard) == seq for shard, seq in want.items()) else None

        return self.wait(f"{application} checkpointed at the last record of every shard", probe, timeout_s, 1.0, alive)

    def wait_flushed(
        self, launcher: Launcher, feed: Feed, shards: set[str] | None = None, timeout_s: float = 30
    ) -> None:
        """Poll ``launcher``'s log until its flush lines reach the last record of every shard written to (or of
        ``shards``). Needed before counting flush lines: a processor's line reaches the launcher's stderr through
        the daemon, possibly after the checkpoint that followed the flush is visible in the lease table."""

        def probe() -> bool:
            last = feed.last_sequence()
            return all(
                any(f.last_sequence_number == last[shard] for f in launcher.flushes(shard))
                for shard in (shards if shards is not None else last)
            )

        self.wait(f"{launcher.name}'s flush lines reach the last record of each shard", probe, timeout_s, 0.5)

    def shards(self) -> list[dict[str, Any]]:
        """ListShards of the scenario's stream (every shard, open or closed)."""
        return list(self.kinesis.list_shards(StreamName=self.stream)["Shards"])

    def shard_ids(self) -> set[str]:
        return {shard["ShardId"] for shard in self.shards()}

    def wait_stream_active(self) -> None:
        wait_stream_active(self.kinesis, self.stream)

    # -- reporting

    def note(self, text: str) -> None:
        self.notes.append(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    def diagnostics(self) -> str:
        parts = [f"======== e2e scenario {self.name} (stream {self.stream}, workdir {self.workdir})"]
        parts.extend(self.notes)
        try:
            parts.append(
                f"lease table {self.application}: {json.dumps(leases(self.dynamodb, self.application), default=str)}"
            )
        except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the real failure
            parts.append(f"lease table {self.application}: unreadable ({exc})")
        for feed in self.feeds:
            parts.append(f"feed {feed.stream}: {feed.sent} records, last per shard {feed.last_sequence()}")
        for launcher in self.launchers:
            parts.append(launcher.diagnostics())
        return "\n".join(parts)

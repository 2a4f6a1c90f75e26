"""Running the KCL daemon: a child in a session of its own, signals forwarded to Java only, its log pumped.

SIGTERM / SIGINT reach only the Java process (forwarded by us): the daemon then runs its graceful shutdown (every
processor gets ``shutdownRequested`` when ``shutdownGraceMillis`` > 0) before its child processors see end of
input. A second signal kills Java at once. With ``--restart-on-failure`` a failed daemon is started again
after 1 s .. 30 s; it resumes from the last checkpoint. The exit code is the daemon's; 0 without any processor
ever initialised is reported and turned into 1; killed by a signal is 128 + n, as a shell reports it.

While the daemon process runs, a beat thread touches the liveness file ``worker`` in ``$ECS_STATE_HEARTBEAT_DIR``
every 10 s (``shard/heartbeat.py``; the shard files are cleared before each start of the daemon) and, with
``ecsState.metrics`` on, writes one ``WorkerHeartbeat`` EMF line per wall-clock minute (``shard/metrics.py``):
its SampleCount over a minute is the number of live workers of the application."""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

from processor.config import load_settings
from processor.errors import LaunchError
from processor.logs import log
from processor.shard.heartbeat import WORKER_BEAT_S, clear_shards, heartbeat_dir, touch_worker
from processor.shard.metrics import Metrics
from processor.worker.daemon_log import DaemonWatch, normalize_level
from processor.worker.launcher import JARS_ENV, LOGBACK_XML, java_command, kclpy_version
from processor.worker.preflight import preflight


def restart_delay(failures_in_a_row: int) -> float:
    """1, 2, 4 ... seconds, at most 30 (pure)."""
    return float(min(30, 2 ** max(0, failures_in_a_row - 1)))


@dataclass
class Outcome:
    code: int
    watch: DaemonWatch
    signalled: bool
    seconds: float


class Supervisor:
    """Runs the daemon, forwards signals to the Java process only, pumps its log."""

    def __init__(
        self,
        command: list[str],
        env: Mapping[str, str],
        watch_level: str,
        daemon_log: IO[str] | None,
        out: IO[str],
        metrics: Metrics | None = None,
    ) -> None:
        self.command = command
        self.env = dict(env)
        self.watch_level = watch_level
        self.daemon_log = daemon_log
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.signals = 0
        self.metrics = metrics
        self.heartbeats = heartbeat_dir(env)
        self._beat_warned = False

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        self.stopping.set()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if self.signals == 1:
            log("daemon.stopping", signal=signal.Signals(signum).name, pid=proc.pid)
            proc.send_signal(signum)
        else:
            log("daemon.killing", level="WARNING", signal=signal.Signals(signum).name, pid=proc.pid)
            proc.kill()

    def _pump(self, stream: IO[bytes], watch: DaemonWatch) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            fed = watch.feed(line)
            if self.daemon_log is not None and fed.record:
                self.daemon_log.write(line + "\n")
                self.daemon_log.flush()
            if fed.show is not None:
                self.out.write(fed.show + "\n")
                self.out.flush()

    def _beat(self, proc: subprocess.Popen[bytes], interval_s: float = WORKER_BEAT_S) -> None:
        """While ``proc`` runs: the liveness file every ``interval_s``, the WorkerHeartbeat metric once a minute."""
        minute = -1
        while proc.poll() is None:
            if self.heartbeats is not None:
                try:
                    touch_worker(self.heartbeats)
                except OSError as exc:
                    if not self._beat_warned:
                        self._beat_warned = True
                        log(
                            "heartbeat_failed",
                            level="WARNING",
                            path=str(self.heartbeats),
                            error=str(exc),
                            note="the container health check will report this worker unhealthy",
                        )
            now = time.time()
            if self.metrics is not None and int(now // 60) != minute:
                minute = int(now // 60)
                self.metrics.heartbeat(int(now * 1000))
            try:
                proc.wait(interval_s)
            except subprocess.TimeoutExpired:
                pass

    def run_once(self) -> Outcome:
        watch = DaemonWatch(show_level=self.watch_level)
        started = time.monotonic()
        if self.heartbeats is not None:
            try:
                clear_shards(self.heartbeats)
            except OSError:
                pass
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        log("daemon.started", pid=self.proc.pid)
        assert self.proc.stdout is not None
        pump = threading.Thread(target=self._pump, args=(self.proc.stdout, watch), name="daemon-log", daemon=True)
        pump.start()
        beat = threading.Thread(target=self._beat, args=(self.proc,), name="heartbeat", daemon=True)
        beat.start()
        code = self.proc.wait()
        pump.join(10)
        beat.join(1)
        return Outcome(code, watch, self.stopping.is_set(), time.monotonic() - started)


def run_daemon(
    properties: Path,
    log_level: str = "INFO",
    restart_on_failure: bool = False,
    daemon_log: Path | None = None,
    jars: str | None = None,
    jvm_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
) -> int:
    env = dict(os.environ if env is None else env)
    out = out or sys.stderr
    properties = properties.resolve()
    try:
        level = normalize_level(log_level)
        java, jars_dir, props, child_env = preflight(properties, jars, env, Path(sys.executable).parent)
    except LaunchError as exc:
        for line in str(exc).splitlines():
            print(f"ecs-state run: {line}", file=out)
        return LaunchError.exit_code
    if props.get("retrievalMode", "").upper() != "POLLING":
        log(
            "daemon.retrieval_mode",
            level="WARNING",
            retrievalMode=props.get("retrievalMode"),
            note="unset or FANOUT uses enhanced fan-out (SubscribeToShard); set retrievalMode = POLLING "
            "unless that is wanted",
        )
    command = java_command(java, jars_dir, properties, LOGBACK_XML, level, jvm_args)
    log_file = open(daemon_log, "a", encoding="utf-8") if daemon_log else None
    settings = load_settings(properties, env=child_env)  # preflight has checked it
    metrics = Metrics(settings.metrics, settings.application) if settings.metrics != "none" else None
    supervisor = Supervisor(command, child_env, level, log_file, out, metrics)
    previous = {s: signal.signal(s, supervisor.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    failures = 0
    try:
        log("daemon.command", argv=command, properties=str(properties), kclpy=kclpy_version())
        while True:
            outcome = supervisor.run_once()
            watch = outcome.watch
            problem = watch.diagnosis(outcome.code, outcome.signalled)
            log(
                "daemon.exited",
                code=outcome.code,
                seconds=round(outcome.seconds, 1),
                processors_initialized=watch.processors_initialized,
                shards=watch.shards,
                signalled=outcome.signalled,
            )
            if problem:
                print(f"ecs-state run: {problem}", file=out)
            code = 1 if (outcome.code == 0 and problem) else outcome.code
            if code < 0:  # killed by a signal: report it the way a shell does (128 + signal number)
                code = 128 - code
            if outcome.signalled or code == 0 or not restart_on_failure or watch.config_error:
                return code
            failures = 1 if outcome.seconds > 120 else failures + 1
            delay = restart_delay(failures)
            log("daemon.restarting", after_s=delay, failures_in_a_row=failures)
            if supervisor.stopping.wait(delay):
                return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if log_file is not None:
            log_file.close()


def _set_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its starter dies (Linux prctl), so a killed test
    run or launcher leaves no emulator or daemon behind. The kernel ties this to the starting *thread*, so it
    is only used from the main thread (a child started from a worker thread would die with that thread)."""
    return _set_parent_death_signal if threading.current_thread() is threading.main_thread() else None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the KCL MultiLangDaemon with a properties file (the processors are ecs-state-processor)",
        description="Start the KCL MultiLangDaemon (Java) for the given properties file and supervise it. "
        "SIGTERM / Ctrl-C start its graceful shutdown (a second one kills it). The exit code is the "
        "daemon's. Needs Java 17 and the worker extra: pip install 'ecs-state[worker]'.",
    )
    parser.add_argument("--properties", required=True, type=Path, help="KCL properties file")
    parser.add_argument(
        "--log-level", default="INFO", help="daemon log level: TRACE, DEBUG, INFO (default), WARN, ERROR"
    )
    parser.add_argument(
        "--restart-on-failure",
        action="store_true",
        help="start the daemon again (backing off 1 s .. 30 s) when it exits with an error, "
        "e.g. after a record processor failed; it resumes from the last checkpoint",
    )
    parser.add_argument("--daemon-log", type=Path, help="append every line the daemon writes to this file")
    parser.add_argument("--jars", help=f"folder of the KCL jars (default: ${JARS_ENV} or amazon_kclpy/jars)")
    parser.add_argument(
        "--jvm-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra JVM argument, e.g. --jvm-arg=-Xmx512m (repeatable)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_daemon(
        args.properties,
        log_level=args.log_level,
        restart_on_failure=args.restart_on_failure,
        daemon_log=args.daemon_log,
        jars=args.jars,
        jvm_args=args.jvm_arg,
    )

"""``ecs-state run``: start the real KCL MultiLangDaemon (Java) with a properties file and supervise it.

The launcher checks what it can before starting Java (Java, the KCL jars, the required keys, the local
endpoints), then runs::

    java -cp "<amazon_kclpy>/jars/*:<dir of FILE>" software.amazon.kinesis.multilang.MultiLangDaemon \\
         --properties-file FILE --log-configuration processor/logback.xml

in a session of its own, so SIGTERM / SIGINT reach only the Java process (forwarded by us): the daemon then
runs its graceful shutdown (every processor gets ``shutdownRequested`` when ``shutdownGraceMillis`` > 0)
before its child processors see end of input. A second signal kills Java at once.

The daemon's log (stderr, one line per event) is read line by line: lines at or above ``--log-level`` are
shown, everything goes to ``--daemon-log`` when given, and a few lines are watched to tell what happened:
whether a record processor was ever initialised, whether KCL gave up initialising (it then exits 0), and
whether a processor failed (the daemon then calls ``System.exit(1)``: the whole worker stops).
The exit code is the daemon's; 0 without any processor ever initialised is reported and turned into 1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping, NamedTuple, Sequence
from urllib.parse import urlsplit

from processor.config import PROPERTIES_ENV, read_properties
from processor.localstack import die_with_parent
from processor.logs import log

MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
LOGBACK_XML = Path(__file__).with_name("logback.xml")
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
ENDPOINT_KEYS = ("kinesisEndpoint", "dynamoDBEndpoint")
JARS_ENV = "ECS_STATE_KCL_JARS"
EXIT_PREFLIGHT = 2


class LaunchError(Exception):
    """The daemon cannot be started; the message is one line: what is wrong, where, and the fix."""


# ---- pure parts ----------------------------------------------------------------------------------------------

def level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else LEVELS.index("INFO")


def normalize_level(level: str) -> str:
    level = level.strip().upper()
    level = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR"}.get(level, level)
    if level not in LEVELS:
        raise LaunchError(f"--log-level {level!r} is not one of {', '.join(LEVELS)}")
    return level


def classpath(jars_dir: Path, properties: Path) -> str:
    """``<jars>/*`` (Java expands the wildcard) and the properties file's folder."""
    return f"{jars_dir}{os.sep}*{os.pathsep}{properties.parent}"


def java_command(java: str, jars_dir: Path, properties: Path, logback: Path = LOGBACK_XML,
                 log_level: str = "INFO", jvm_args: Sequence[str] = ()) -> list[str]:
    """The command line that starts the MultiLangDaemon (pure). ``properties`` should be absolute."""
    level = normalize_level(log_level)
    chatty = level if level_rank(level) <= level_rank("DEBUG") else "WARN"
    marker = level if level_rank(level) < level_rank("INFO") else "INFO"
    return [
        java, *jvm_args,
        f"-Decs.kcl.logLevel={level}",
        f"-Decs.kcl.chattyLevel={chatty}",
        f"-Decs.kcl.markerLevel={marker}",
        # Also for logback's own start-up, before the daemon applies --log-configuration: without it the
        # jar's bundled logback.xml is used first and logback prints status lines on stdout.
        f"-Dlogback.configurationFile={logback}",
        "-cp", classpath(jars_dir, properties),
        MAIN_CLASS,
        "--properties-file", str(properties),
        "--log-configuration", str(logback),
    ]


def check_required(props: Mapping[str, str], source: str) -> list[str]:
    """One message per missing required key (empty counts as missing)."""
    problems = []
    if not props.get("executableName"):
        problems.append(f"{source}: executableName is missing; set it to the processor command, "
                        f"e.g. executableName = ecs-state-processor")
    if not (props.get("streamName") or props.get("streamArn")):
        problems.append(f"{source}: neither streamName nor streamArn is set; name the Kinesis stream to read")
    if not props.get("applicationName"):
        problems.append(f"{source}: applicationName is missing; set it (it names the KCL lease table, "
                        f"so every worker of one application must use the same name)")
    if not props.get("AwsCredentialsProvider"):
        problems.append(f"{source}: AwsCredentialsProvider is missing (the daemon refuses to start without it); "
                        f"set AwsCredentialsProvider = DefaultCredentialsProvider")
    return problems


def check_executable(props: Mapping[str, str], source: str, path: str | None) -> list[str]:
    """The first word of executableName must be a runnable file (the daemon splits the value on spaces and
    starts it with the PATH it was given)."""
    command = props.get("executableName", "").split()
    if not command:
        return []
    program = command[0]
    if os.sep in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            return [f"{source}: executableName {program} is not an executable file; fix the path "
                    f"(relative paths count from the current folder)"]
        return []
    if shutil.which(program, path=path) is None:
        return [f"{source}: executableName {program} is not on PATH; install the project (scripts/bootstrap) "
                f"or give an absolute path"]
    return []


def endpoint_address(url: str) -> tuple[str, int]:
    """(host, port) of an endpoint URL; ValueError when it is not ``http(s)://host[:port]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def check_endpoints(props: Mapping[str, str], source: str, timeout_s: float = 2.0) -> list[str]:
    """TCP-connect to ``kinesisEndpoint`` / ``dynamoDBEndpoint`` when set (unset means AWS itself: skipped)."""
    problems = []
    for key in ENDPOINT_KEYS:
        url = props.get(key)
        if not url:
            continue
        try:
            host, port = endpoint_address(url)
        except ValueError as exc:
            problems.append(f"{source}: {key} = {url} is {exc}; write it like http://127.0.0.1:4568")
            continue
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            problems.append(f"{source}: {key} = {url} does not answer ({reason}); start the local stack "
                            f"(ecs-state stack --dir DIR, then run with DIR/properties/local.properties) "
                            f"or fix the endpoint")
    return problems


def daemon_env(props: Mapping[str, str], properties: Path, base: Mapping[str, str],
               bin_dir: Path | None = None) -> dict[str, str]:
    """Environment of the Java process and so of every processor it starts (pure).

    ``ECS_STATE_PROPERTIES`` points the processors at the same file; the folder of this Python (a venv's
    ``bin``, where ``ecs-state-processor`` lives) goes first on PATH; ``dynamoDBEndpoint`` /
    ``kinesisEndpoint`` / ``regionName`` become boto3's ``AWS_ENDPOINT_URL_*`` / region variables unless
    those are already set, so the processors write to the DynamoDB that holds the leases."""
    env = dict(base)
    env[PROPERTIES_ENV] = str(properties)
    if bin_dir is not None:
        entries = env.get("PATH", "").split(os.pathsep) if env.get("PATH") else []
        env["PATH"] = os.pathsep.join([str(bin_dir), *[e for e in entries if e != str(bin_dir)]])
    for key, variable in (("dynamoDBEndpoint", "AWS_ENDPOINT_URL_DYNAMODB"),
                          ("kinesisEndpoint", "AWS_ENDPOINT_URL_KINESIS")):
        if props.get(key) and variable not in env:
            env[variable] = props[key]
    if props.get("regionName"):
        env.setdefault("AWS_REGION", props["regionName"])
        env.setdefault("AWS_DEFAULT_REGION", props["regionName"])
    return env


_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO|WARN|ERROR)\s+\[[^\]]*\] (\S+) - (.*)$")
_CHILD_STDERR = re.compile(r"^Received error line from subprocess \[(.*)\] for shard (\S+)$")
_SHARD = re.compile(r"shardId=([^,\s)]+)")


class Fed(NamedTuple):
    show: str | None  # the text to show, None to hide it
    record: bool  # whether the line belongs in the daemon log file (False: a duplicate)


@dataclass
class DaemonWatch:
    """What the daemon's log lines said, fed one line at a time (pure), and which lines to show.

    Relies on processor/logback.xml's pattern ``HH:mm:ss.SSS LEVEL [thread] logger - message``; lines that do
    not match (stack traces, JVM messages) belong to the previous line. A processor's stderr line reaches us
    twice: logged by DrainChildSTDERRTask ("Received error line from subprocess [LINE] for shard S") and then
    printed as it is; the first is shown unwrapped (whatever the level), the raw copy is dropped."""

    show_level: str = "INFO"
    consumers_created: int = 0
    processors_initialized: int = 0
    init_failed: str | None = None
    processor_failed: str | None = None
    start_failed: str | None = None
    config_error: str | None = None
    last_error: str | None = None
    _current_shown: bool = True
    _last_raw: str = ""
    _shards: set[str] = field(default_factory=set)
    _raw_copies: Counter[str] = field(default_factory=Counter)

    def feed(self, line: str) -> Fed:
        """Take one line (without newline)."""
        match = _LINE.match(line)
        if match is None:
            if self._raw_copies[line] > 0:
                self._raw_copies[line] -= 1
                return Fed(None, False)
            if line.startswith("Usage: amazon-kinesis-client MultiLangDaemon"):
                # main() failed before the daemon started: the message printed just before the usage text
                self.config_error = self._last_raw or "see the lines above"
                self._current_shown = True
            elif line.strip():
                self._last_raw = line.strip()
            return Fed(line if self._current_shown else None, True)
        level, logger, message = match.groups()
        name = logger.rsplit(".", 1)[-1]
        if name == "Scheduler" and message.startswith("Created new shardConsumer"):
            self.consumers_created += 1
            shard = _SHARD.search(message)
            if shard:
                self._shards.add(shard.group(1))
        elif name == "Scheduler" and message.startswith("Unable to initialize after"):
            self.init_failed = message
        elif name == "MultiLangProtocol" and '"responseFor":"initialize"' in message:
            self.processors_initialized += 1
        elif name == "MultiLangShardRecordProcessor" and message.startswith("Failed to start client executable"):
            self.start_failed = message
        elif name == "MultiLangShardRecordProcessor" and message.startswith(
                ("Encountered an error while trying to process records", "Child process failed to process",
                 "Encountered an error while trying to initialize", "Failed to initialize child process")):
            self.processor_failed = message
        child = _CHILD_STDERR.match(message) if name == "DrainChildSTDERRTask" else None
        if child:
            self._raw_copies[child.group(1)] += 1
            self._current_shown = True
            return Fed(child.group(1), True)
        if level == "ERROR":
            self.last_error = f"{logger} - {message}"
        hidden = level_rank(level) < level_rank(self.show_level)
        if name == "MultiLangProtocol" and level == "INFO" and level_rank(self.show_level) > level_rank("DEBUG"):
            hidden = True  # one line per action and shard: read for the marker, shown only at DEBUG
        self._current_shown = not hidden
        return Fed(None if hidden else line, True)

    @property
    def shards(self) -> list[str]:
        return sorted(self._shards)

    def diagnosis(self, code: int, signalled: bool) -> str | None:
        """One line explaining a bad end, or None when the end is expected."""
        if self.config_error:
            return (f"the KCL daemon refused its configuration: {self.config_error}; fix that key in the "
                    f"properties file")
        if self.init_failed:
            return (f"KCL gave up initialising ({self.init_failed}); the last error was: {self.last_error}. "
                    f"Check that the stream exists and the lease table's DynamoDB answers")
        if self.start_failed:
            return f"the daemon could not start the record processor: {self.start_failed}; check executableName"
        if code < 0 and not signalled:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return (f"the KCL daemon was killed by {name} (not by us); it restarts from the last checkpoint when "
                    f"run again (ecs-state run --restart-on-failure does that)")
        if code != 0 and not signalled:
            what = f"a record processor failed ({self.processor_failed})" if self.processor_failed else \
                f"the daemon failed (last error: {self.last_error})"
            return (f"the KCL daemon exited {code}: {what}; it restarts from the last checkpoint when "
                    f"run again (ecs-state run --restart-on-failure does that)")
        if code == 0 and not signalled and self.processors_initialized == 0:
            return (f"the KCL daemon exited 0 without ever initialising a record processor (last error: "
                    f"{self.last_error}); check the stream name, the endpoints and the daemon log")
        return None


def restart_delay(failures_in_a_row: int) -> float:
    """1, 2, 4 ... seconds, at most 30 (pure)."""
    return float(min(30, 2 ** max(0, failures_in_a_row - 1)))


# ---- finding things ------------------------------------------------------------------------------------------

def find_java(env: Mapping[str, str]) -> str:
    home = env.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not (java.is_file() and os.access(java, os.X_OK)):
            raise LaunchError(f"JAVA_HOME={home} has no bin/java; point JAVA_HOME at a Java 17+ installation "
                              f"or unset it to use java from PATH")
        return str(java)
    java_path = shutil.which("java", path=env.get("PATH"))
    if not java_path:
        raise LaunchError("java not found (JAVA_HOME unset, no java on PATH); install Java 17+ "
                          "(Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME")
    return java_path


def kclpy_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("amazon-kclpy")
    except PackageNotFoundError:
        return "?"


def find_jars(override: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The KCL jars: ``override``, ``$ECS_STATE_KCL_JARS``, or amazon_kclpy's ``jars`` folder."""
    env = os.environ if env is None else env
    configured = override or env.get(JARS_ENV)
    if configured:
        jars = Path(configured)
        how = f"--jars / {JARS_ENV} = {configured}"
    else:
        try:
            import amazon_kclpy
        except ImportError:
            raise LaunchError(f"amazon-kclpy is not installed for {sys.executable}; run scripts/bootstrap") \
                from None
        jars = Path(amazon_kclpy.__file__).parent / "jars"
        how = f"amazon-kclpy {kclpy_version()}"
    if not any(jars.glob("amazon-kinesis-client-multilang-*.jar")):
        raise LaunchError(f"no KCL jars in {jars} ({how}: amazon-kinesis-client-multilang-*.jar missing); "
                          f"amazon-kclpy downloads them when it is installed: pip install --force-reinstall "
                          f"--no-deps --no-cache-dir amazon-kclpy=={kclpy_version()}")
    return jars


# ---- running -------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    code: int
    watch: DaemonWatch
    signalled: bool
    seconds: float


class Supervisor:
    """Runs the daemon, forwards signals to the Java process only, pumps its log."""

    def __init__(self, command: list[str], env: Mapping[str, str], watch_level: str,
                 daemon_log: IO[str] | None, out: IO[str]) -> None:
        self.command = command
        self.env = dict(env)
        self.watch_level = watch_level
        self.daemon_log = daemon_log
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.signals = 0

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

    def run_once(self) -> Outcome:
        watch = DaemonWatch(show_level=self.watch_level)
        started = time.monotonic()
        self.proc = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent())
        log("daemon.started", pid=self.proc.pid)
        assert self.proc.stdout is not None
        pump = threading.Thread(target=self._pump, args=(self.proc.stdout, watch), name="daemon-log", daemon=True)
        pump.start()
        code = self.proc.wait()
        pump.join(10)
        return Outcome(code, watch, self.stopping.is_set(), time.monotonic() - started)


def preflight(properties: Path, jars_override: str | None, env: Mapping[str, str],
              bin_dir: Path | None) -> tuple[str, Path, dict[str, str], dict[str, str]]:
    """Everything checked before Java starts: (java, jars, properties, child env); LaunchError with all
    problems, one per line, otherwise."""
    problems: list[str] = []
    java = jars = None
    try:
        java = find_java(env)
    except LaunchError as exc:
        problems.append(str(exc))
    try:
        jars = find_jars(jars_override, env)
    except LaunchError as exc:
        problems.append(str(exc))
    if not properties.is_file():
        problems.append(f"properties file {properties} does not exist; pass --properties FILE "
                        f"(properties/local.properties rendered by ecs-state stack, or properties/aws.properties)")
        raise LaunchError("\n".join(problems))
    props = read_properties(properties)
    child_env = daemon_env(props, properties, env, bin_dir)
    source = str(properties)
    problems += check_required(props, source)
    problems += check_executable(props, source, child_env.get("PATH"))
    problems += check_endpoints(props, source)
    if problems or java is None or jars is None:
        raise LaunchError("\n".join(problems))
    return java, jars, props, child_env


def run_daemon(properties: Path, log_level: str = "INFO", restart_on_failure: bool = False,
               daemon_log: Path | None = None, jars: str | None = None, jvm_args: Sequence[str] = (),
               env: Mapping[str, str] | None = None, out: IO[str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    out = out or sys.stderr
    properties = properties.resolve()
    try:
        level = normalize_level(log_level)
        java, jars_dir, props, child_env = preflight(properties, jars, env, Path(sys.executable).parent)
    except LaunchError as exc:
        for line in str(exc).splitlines():
            print(f"ecs-state run: {line}", file=out)
        return EXIT_PREFLIGHT
    if props.get("retrievalMode", "").upper() != "POLLING":
        log("daemon.retrieval_mode", level="WARNING", retrievalMode=props.get("retrievalMode"),
            note="unset or FANOUT uses enhanced fan-out (SubscribeToShard); set retrievalMode = POLLING "
                 "unless that is wanted")
    command = java_command(java, jars_dir, properties, LOGBACK_XML, level, jvm_args)
    log_file = open(daemon_log, "a", encoding="utf-8") if daemon_log else None
    supervisor = Supervisor(command, child_env, level, log_file, out)
    previous = {s: signal.signal(s, supervisor.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    failures = 0
    try:
        log("daemon.command", argv=command, properties=str(properties), kclpy=kclpy_version())
        while True:
            outcome = supervisor.run_once()
            watch = outcome.watch
            problem = watch.diagnosis(outcome.code, outcome.signalled)
            log("daemon.exited", code=outcome.code, seconds=round(outcome.seconds, 1),
                processors_initialized=watch.processors_initialized, shards=watch.shards,
                signalled=outcome.signalled)
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


# ---- CLI -----------------------------------------------------------------------------------------------------

def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run the KCL MultiLangDaemon with a properties file (the processors are ecs-state-processor)",
        description="Start the KCL MultiLangDaemon (Java) for the given properties file and supervise it. "
                    "SIGTERM / Ctrl-C start its graceful shutdown (a second one kills it). The exit code is the "
                    "daemon's.")
    parser.add_argument("--properties", required=True, type=Path, help="KCL properties file")
    parser.add_argument("--log-level", default="INFO", help="daemon log level: TRACE, DEBUG, INFO (default), "
                                                            "WARN, ERROR")
    parser.add_argument("--restart-on-failure", action="store_true",
                        help="start the daemon again (backing off 1 s .. 30 s) when it exits with an error, "
                             "e.g. after a record processor failed; it resumes from the last checkpoint")
    parser.add_argument("--daemon-log", type=Path, help="append every line the daemon writes to this file")
    parser.add_argument("--jars", help=f"folder of the KCL jars (default: ${JARS_ENV} or amazon_kclpy/jars)")
    parser.add_argument("--jvm-arg", action="append", default=[], metavar="ARG",
                        help="extra JVM argument, e.g. --jvm-arg=-Xmx512m (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_daemon(args.properties, log_level=args.log_level, restart_on_failure=args.restart_on_failure,
                      daemon_log=args.daemon_log, jars=args.jars, jvm_args=args.jvm_arg)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m processor.daemon --properties FILE ...`` (same as ``ecs-state run``)."""
    parser = argparse.ArgumentParser(prog="python -m processor.daemon")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(["run", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""Reading the KCL daemon's log, one line at a time: what happened and what to show. Pure: no I/O.

Relies on processor/worker/logback.xml's pattern ``HH:mm:ss.SSS LEVEL [thread] logger - message``. The watch tells
whether a record processor was ever initialised, whether KCL gave up initialising (it then exits 0), whether a
processor failed (the daemon then calls ``System.exit(1)``: the whole worker stops), and turns a bad end into
one line naming the cause (``DaemonWatch.diagnosis``)."""

from __future__ import annotations

import re
import signal
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from processor.errors import LaunchError

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


def level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else LEVELS.index("INFO")


def normalize_level(level: str) -> str:
    level = level.strip().upper()
    level = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR"}.get(level, level)
    if level not in LEVELS:
        raise LaunchError(f"--log-level {level!r} is not one of {', '.join(LEVELS)}")
    return level


_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO|WARN|ERROR)\s+\[[^\]]*\] (\S+) - (.*)$")


_CHILD_STDERR = re.compile(r"^Received error line from subprocess \[(.*)\] for shard (\S+)$")


_SHARD = re.compile(r"shardId=([^,\s)]+)")


class Fed(NamedTuple):
    show: str | None  # the text to show, None to hide it
    record: bool  # whether the line belongs in the daemon log file (False: a duplicate)


@dataclass
class DaemonWatch:
    """What the daemon's log lines said, fed one line at a time (pure), and which lines to show.

    Relies on processor/worker/logback.xml's pattern ``HH:mm:ss.SSS LEVEL [thread] logger - message``; lines that do
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
            (
                "Encountered an error while trying to process records",
                "Child process failed to process",
                "Encountered an error while trying to initialize",
                "Failed to initialize child process",
            )
        ):
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
            return f"the KCL daemon refused its configuration: {self.config_error}; fix that key in the properties file"
        if self.init_failed:
            return (
                f"KCL gave up initialising ({self.init_failed}); the last error was: {self.last_error}. "
                f"Check that the stream exists and the lease table's DynamoDB answers"
            )
        if self.start_failed:
            return f"the daemon could not start the record processor: {self.start_failed}; check executableName"
        if code < 0 and not signalled:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return (
                f"the KCL daemon was killed by {name} (not by us); it restarts from the last checkpoint when "
                f"run again (ecs-state run --restart-on-failure does that)"
            )
        if code != 0 and not signalled:
            what = (
                f"a record processor failed ({self.processor_failed})"
                if self.processor_failed
                else f"the daemon failed (last error: {self.last_error})"
            )
            return (
                f"the KCL daemon exited {code}: {what}; it restarts from the last checkpoint when "
                f"run again (ecs-state run --restart-on-failure does that)"
            )
        if code == 0 and not signalled and self.processors_initialized == 0:
            return (
                f"the KCL daemon exited 0 without ever initialising a record processor (last error: "
                f"{self.last_error}); check the stream name, the endpoints and the daemon log"
            )
        return None

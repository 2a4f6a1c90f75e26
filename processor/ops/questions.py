"""The pure part of the questions the read side answers (``ecs-state tasks --at``, ``stopped``, ``why``): time and
duration parsing, the time filters, the UTC days a window covers, task ARNs from ids, and a task's story with a
plain-words reading of ECS's stop codes and common reasons. No I/O; ``ops/read.py`` calls these around its
Queries.

Rules:
- TIME is ISO 8601 as ECS writes it (``2026-11-27T09:07:00.000Z``); an offset, no fraction, or a date alone are
  accepted too, and a time without an offset is UTC. DURATION is a number and a unit: ``s``, ``m``, ``h``, ``d``
  (``90m``, ``2h``, ``7d``), meaning that long before the window's end (``--until``, default now).
- Stored times are compared as instants (parsed), never as text; an item whose time cannot be parsed is not in a
  time window (it is not silently placed in one).
- Running at TIME: ``startedAt`` at or before TIME, and no ``stoppedAt`` or one after TIME.
- The status at TIME (``status_at``, for ``tasks --at T --status S``) is read from the stored times, since only
  the newest status is stored: STOPPED when ``stoppedAt`` is at or before TIME; else RUNNING when running at TIME;
  else PENDING when ``createdAt`` is at or before TIME (not started yet: PROVISIONING, PENDING, ACTIVATING); else
  the task did not exist yet. Only those three statuses can be asked at a time (``AT_STATUSES``); another is
  refused in one line.
- Stopped in a window: ``stoppedAt`` at or after ``since`` and at or before ``until``; listed newest first.
- Validation, each a one-line ``ReadError`` (exit 2): a TIME between ``EARLIEST`` (2000-01-01) and a day after
  now; a DURATION above zero and at most ``LONGEST`` (10 years); a window whose UTC days (one Query each) number
  more than the cap (``--max-days``, default ``MAX_DAYS``; 0 lifts it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from processor.errors import ReadError

EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LONGEST = timedelta(days=3650)
MAX_DAYS = 31
AT_STATUSES = ("PENDING", "RUNNING", "STOPPED")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (UTC when no offset is given) -> an aware datetime; ``ReadError`` when it is not one."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ReadError(
            f"{text!r} is not a time: give ISO 8601 as ECS writes it, e.g. 2026-11-27T09:07:00.000Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_duration(text: str) -> timedelta | None:
    """``90m`` / ``2h`` / ``7d`` -> a timedelta; ``None`` when ``text`` is not a duration."""
    match = _DURATION.match(text)
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)]) if match else None


def parse_since(text: str, now: datetime) -> datetime:
    """A TIME, or a DURATION meaning that long before ``now`` (the window's end)."""
    duration = parse_duration(text)
    return now - checked_duration("--since", text, duration) if duration is not None else parse_time(text)


def checked_duration(flag: str, text: str, duration: timedelta | None) -> timedelta:
    """``duration`` when it is above zero and at most ``LONGEST``; else a one-line ``ReadError``."""
    if duration is None:
        raise ReadError(f"{flag} {text!r} is not a duration: give a number and a unit s, m, h or d (90m, 2h, 7d)")
    if duration <= timedelta(0) or duration > LONGEST:
        raise ReadError(f"{flag} {text!r} is out of range: give a duration above 0 and at most {LONGEST.days}d")
    return duration


def parse_duration_arg(flag: str, text: str) -> timedelta:
    """A DURATION given to ``flag``, checked (``checked_duration``)."""
    return checked_duration(flag, text, parse_duration(text))


def check_time(flag: str, moment: datetime, now: datetime) -> datetime:
    """``moment`` when it is between ``EARLIEST`` and a day after ``now``; else a one-line ``ReadError``."""
    if moment < EARLIEST or moment > now + timedelta(days=1):
        raise ReadError(
            f"{flag} {ecs_time(moment)} is out of range: give a time between {EARLIEST.date()} and "
            f"{(now + timedelta(days=1)).date()}"
        )
    return moment


def check_days(days: list[str], max_days: int) -> list[str]:
    """The UTC days of a window (one Query each), refused in one line when more than ``max_days`` (0: no cap)."""
    if max_days and len(days) > max_days:
        raise ReadError(
            f"the window covers {len(days)} UTC days ({days[-1]} to {days[0]}), one query each, more than "
            f"--max-days {max_days}; narrow --since/--until, or pass --max-days {len(days)} (0: no cap)"
        )
    return days


def check_at_status(status: str) -> str:
    """A status that ``tasks --at`` can tell (``AT_STATUSES``); else a one-line ``ReadError``."""
    if status not in AT_STATUSES:
        raise ReadError(
            f"--at with --status {status}: only {', '.join(AT_STATUSES)} can be told at a past time (from "
            f"createdAt, startedAt and stoppedAt); drop --at to list the tasks whose newest status is {status}"
        )
    return status


def stored_time(value: Any) -> datetime | None:
    """A stored time attribute (ECS's ISO text) -> aware datetime; ``None`` when absent or not a time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ReadError:
        return None


def ecs_time(moment: datetime) -> str:
    """An instant as ECS writes it: ``2026-11-27T09:07:00.000Z``."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def running_at(item: dict[str, Any], moment: datetime) -> bool:
    """Was the task running at ``moment`` (by its stored ``startedAt`` / ``stoppedAt``)?"""
    started = stored_time(item.get("startedAt"))
    if started is None or started > moment:
        return False
    if item.get("stoppedAt") in (None, ""):
        return True
    stopped = stored_time(item.get("stoppedAt"))
    return stopped is not None and stopped > moment


def status_at(item: dict[str, Any], moment: datetime) -> str | None:
    """The task's status at ``moment`` (module docstring), ``None`` when it did not exist yet or its times say
    nothing."""
    stopped = stored_time(item.get("stoppedAt"))
    if stopped is not None and stopped <= moment:
        return "STOPPED"
    if running_at(item, moment):
        return "RUNNING"
    created = stored_time(item.get("createdAt"))
    started = stored_time(item.get("startedAt"))
    if created is not None and created <= moment and (started is None or started > moment):
        return "PENDING"
    return None


def stopped_between(item: dict[str, Any], since: datetime, until: datetime) -> bool:
    stopped = stored_time(item.get("stoppedAt"))
    return stopped is not None and since <= stopped <= until


def newest_stopped_first(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(
        items, key=lambda it: (stored_time(it.get("stoppedAt")) or epoch, str(it.get("taskArn", ""))), reverse=True
    )


def days_between(since: datetime, until: datetime) -> list[str]:
    """The UTC days (``YYYY-MM-DD``) from ``until`` back to ``since``, newest first: the ``stopped-index``
    partitions a window covers."""
    if since > until:
        return []
    day, first = until.astimezone(timezone.utc).date(), since.astimezone(timezone.utc).date()
    days = []
    while day >= first:
        days.append(day.isoformat())
        day -= timedelta(days=1)
    return days


def task_arn(task: str, cluster_arn: str | None) -> str:
    """A task ARN from an ARN or an id; an id needs the cluster's ARN (``arn:...:cluster/NAME``)."""
    if task.startswith("arn:"):
        return task
    if not cluster_arn:
        raise ReadError(
            f"{task!r} is a task id: pass --cluster (name or ARN) so its ARN can be built, or pass the task ARN"
        )
    head, _, name = cluster_arn.partition(":cluster/")
    if not name:
        raise ReadError(f"{cluster_arn!r} is not a cluster ARN (arn:...:cluster/NAME)")
    return f"{head}:task/{name}/{task}"


def service_group(service: str) -> str:
    """``--service NAME`` -> the ``group`` ECS gives the service's tasks (``service:NAME``)."""
    return service if service.startswith("service:") else f"service:{service}"


# ------------------------------------------------------------------------------------------ plain words
STOP_CODES = {
    "TaskFailedToStart": "the task never reached RUNNING: ECS could not start it (image pull, resources, "
    "network or secrets; see the reason and each container's reason)",
    "EssentialContainerExited": "an essential container exited, so ECS stopped the whole task (see which container "
    "exited and its exit code)",
    "UserInitiated": "someone or something called StopTask (a person, a script, or a deployment tool)",
    "ServiceSchedulerInitiated": "the service scheduler stopped it: a deployment replaced it, the service scaled "
    "in, or a health check failed",
    "SpotInterruption": "the Spot capacity under it was reclaimed by AWS (Fargate Spot or an EC2 Spot instance)",
    "TerminationNotice": "the instance or Fargate host under it was being retired or terminated",
}
_EXIT_CODES = {
    0: "exited normally (0)",
    1: "application error (1)",
    137: "killed by SIGKILL (137): out of memory, or not stopping within the stop timeout after SIGTERM",
    139: "segmentation fault (139)",
    143: "terminated by SIGTERM (143): asked to stop",
    255: "exited with 255: often a failed entry point",
}


def reading_of_stop_code(code: Any) -> str:
    if not code:
        return "no stop code recorded"
    return STOP_CODES.get(str(code), f"stop code {code} (not one of the common ones)")


def reading_of_reason(reason: Any) -> str | None:
    """Plain words for the common stopped reasons and container reasons; ``None`` when nothing is recognised."""
    text = str(reason or "")
    lowered = text.lower()
    if "outofmemory" in lowered.replace(" ", ""):
        return "out of memory: the container used more than its memory limit and was killed"
    if "health check" in lowered or "healthcheck" in lowered:
        return "failed its health checks (load balancer or container health check)"
    if "cannotpullcontainer" in lowered.replace(" ", "") or "pull image" in lowered:
        return "the image could not be pulled (name, tag, registry permissions or network)"
    if "resourceinitializationerror" in lowered.replace(" ", ""):
        return "the task's resources could not be set up (secrets, logs or network)"
    if "scaling activity" in lowered:
        return "a scaling activity of the service stopped it"
    if "deployment" in lowered:
        return "a deployment replaced it"
    if "spot" in lowered and "interrupt" in lowered:
        return "Spot interruption"
    return None


def reading_of_exit(code: Any, reason: Any) -> str:
    words = reading_of_reason(reason)
    if isinstance(code, int) and not isinstance(code, bool):
        base = _EXIT_CODES.get(code, f"exited with {code}")
        if code == 137 and words and words.startswith("out of memory"):
            return words + " (exit 137)"
        return base + (f"; {words}" if words and not base.startswith(words) else "")
    return words or "no exit code (the container may not have started)"


@dataclass(frozen=True)
class Story:
    """One task's story, as ``ecs-state why`` prints it."""

    lines: list[tuple[str, str]]  # (label, text)


def story(item: dict[str, Any]) -> Story:
    """Where and when a stored task ran, how it stopped, each container's exit code and reason, in plain words."""
    lines: list[tuple[str, str]] = [("task", str(item.get("taskArn", "-")))]
    lines.append(("cluster", str(item.get("clusterArn", "-"))))
    if item.get("group"):
        lines.append(("group", str(item["group"])))
    lines.append(("task definition", str(item.get("taskDefinitionArn", "-"))))
    place = item.get("containerInstanceArn")
    lines.append(
        (
            "ran on",
            f"container instance {place}"
            if place
            else f"{item.get('launchType') or 'unknown'} (no container instance)",
        )
    )
    if item.get("capacityProviderName"):
        lines.append(("capacity provider", str(item["capacityProviderName"])))
    for label, name in (
        ("created", "createdAt"),
        ("started", "startedAt"),
        ("stopping", "stoppingAt"),
        ("stopped", "stoppedAt"),
    ):
        if item.get(name):
            lines.append((label, str(item[name])))
    started, stopped = stored_time(item.get("startedAt")), stored_time(item.get("stoppedAt"))
    if started and stopped and stopped >= started:
        lines.append(("ran for", str(stopped - started).split(".")[0]))
    lines.append(
        (
            "status",
            (
                f"{item.get('lastStatus', '-')} (desired {item.get('desiredStatus', '-')}), "
                f"version {item.get('version', '-')}"
            ),
        )
    )
    if item.get("lastStatus") == "STOPPED" or item.get("stopCode") or item.get("stoppedReason"):
        lines.append(("stop code", f"{item.get('stopCode') or '-'}: {reading_of_stop_code(item.get('stopCode'))}"))
        reason = item.get("stoppedReason")
        words = reading_of_reason(reason)
        lines.append(("reason", f"{reason or '-'}" + (f" ({words})" if words else "")))
    else:
        lines.append(("stop", "not stopped (as of the newest stored version)"))
    for container in item.get("containers") or []:
        if not isinstance(container, dict):
            continue
        code, reason = container.get("exitCode"), container.get("reason")
        text = f"{container.get('lastStatus', '-')}, exit {code if code is not None else '-'}"
        if reason:
            text += f", reason {reason!r}"
        lines.append((f"container {container.get('name', '?')}", f"{text}: {reading_of_exit(code, reason)}"))
    return Story(lines)


def render_story(told: Story) -> str:
    width = max(len(label) for label, _ in told.lines)
    return "".join(f"{label.ljust(width)}  {text}\n" for label, text in told.lines)


def containers_summary(item: dict[str, Any]) -> str:
    """``name:exit(reason)`` for each container, for a listing's column."""
    parts = []
    for container in item.get("containers") or []:
        if isinstance(container, dict):
            code = container.get("exitCode")
            part = f"{container.get('name', '?')}:{code if code is not None else '-'}"
            if container.get("reason"):
                part += f"({container['reason']})"
            parts.append(part)
    return " ".join(parts) or "-"

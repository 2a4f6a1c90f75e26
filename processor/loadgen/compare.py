"""verify's comparison, pure: the state and dead-letter tables' rows against a producer's ground truth.

:func:`compare` takes a truth file's content and the rows of the three tables and returns a :class:`Report`
(per table: matched, missing, regressed, unexpected, status mismatches; dead letters matched to poison records
by the SHA-256 of their bytes; the state tables' counts also per account and region, read from the ARNs).
:mod:`processor.loadgen.verify` scans the tables and calls it.

Rules: no I/O and no AWS types; rows are plain dicts. A run passes only on an exact match: every task and
container instance stored at exactly the truth's highest version with its status, nothing else stored, and one
dead letter per poison record sent. Extra dead letters of a poison record that *was* sent (a producer retry
after an ambiguous PutRecords failure writes the same bytes twice) are listed as "repeated" and do not fail the
run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

TASK_KEY = "taskArn"
INSTANCE_KEY = "containerInstanceArn"


@dataclass
class TableDiff:
    """One state table against the truth. Versions are ints (or the stored text when not an integer)."""

    name: str
    expected: int = 0
    stored: int = 0
    matched: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)  # in truth, not stored
    regressed: list[dict[str, Any]] = field(default_factory=list)  # stored version < truth
    unexpected: list[dict[str, Any]] = field(default_factory=list)  # not in truth, or stored > truth
    status_mismatch: list[dict[str, Any]] = field(default_factory=list)  # same version, other status
    expected_by_home: Counter[str] = field(default_factory=Counter)  # ACCOUNT/REGION -> items in truth
    matched_by_home: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.regressed or self.unexpected or self.status_mismatch)

    def problems_by_home(self) -> Counter[str]:
        rows = [*self.missing, *self.regressed, *self.unexpected, *self.status_mismatch]
        return Counter(home_of(str(row.get("arn"))) for row in rows)


@dataclass
class DeadLetterDiff:
    expected: int = 0
    stored: int = 0
    matched: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)  # poison sent, no dead letter
    unexpected: list[dict[str, Any]] = field(default_factory=list)  # dead letter of no poison record
    repeated: list[dict[str, Any]] = field(default_factory=list)  # extra copies of a poison record (ok)
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # poison kind -> reasonCode -> count

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected)


@dataclass
class Report:
    tasks: TableDiff
    instances: TableDiff
    dead_letters: DeadLetterDiff
    truth_totals: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.tasks.ok and self.instances.ok and self.dead_letters.ok

    def homes(self) -> dict[str, dict[str, Any]]:
        """Per ``ACCOUNT/REGION`` (from the ARNs, truth's and stored): items expected, matched, problems, ok."""
        out: dict[str, dict[str, Any]] = {}
        for diff, label in ((self.tasks, "tasks"), (self.instances, "instances")):
            problems = diff.problems_by_home()
            for home in sorted({*diff.expected_by_home, *problems}):
                entry = out.setdefault(home, {"ok": True})
                entry[label] = {
                    "expected": diff.expected_by_home[home],
                    "matched": diff.matched_by_home[home],
                    "problems": problems[home],
                }
                entry["ok"] = entry["ok"] and problems[home] == 0
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        def table(diff: TableDiff) -> dict[str, Any]:
            return {
                "ok": diff.ok,
                "expected": diff.expected,
                "stored": diff.stored,
                "matched": diff.matched,
                "missing": diff.missing,
                "regressed": diff.regressed,
                "unexpected": diff.unexpected,
                "status_mismatch": diff.status_mismatch,
            }

        dl = self.dead_letters
        return {
            "ok": self.ok,
            "tasks": table(self.tasks),
            "instances": table(self.instances),
            "dead_letters": {
                "ok": dl.ok,
                "expected": dl.expected,
                "stored": dl.stored,
                "matched": dl.matched,
                "missing": dl.missing,
                "unexpected": dl.unexpected,
                "repeated": dl.repeated,
                "reasons": dl.reasons,
            },
            "truth_totals": self.truth_totals,
            "homes": self.homes(),
        }

    def render(self, examples: int = 5) -> str:
        """A human summary: counts per category and up to ``examples`` examples of each problem."""
        lines = [f"verify: {'OK - exact match' if self.ok else 'MISMATCH'}"]
        if self.truth_totals:
            t = self.truth_totals
            lines.append(
                f"  truth: {t.get('records', 0)} records sent ({t.get('task_events', 0)} task events, "
                f"{t.get('instance_events', 0)} instance events, {t.get('duplicates', 0)} duplicates, "
                f"{t.get('poison', 0)} poison, {t.get('ignored', 0)} ignored)"
            )
        for diff in (self.tasks, self.instances):
            lines.append(
                f"  {diff.name}: expected {diff.expected}, stored {diff.stored}, matched {diff.matched}; "
                f"missing {len(diff.missing)}, regressed {len(diff.regressed)}, "
                f"unexpected {len(diff.unexpected)}, status mismatch {len(diff.status_mismatch)}"
            )
            for label, rows in (
                ("missing", diff.missing),
                ("regressed", diff.regressed),
                ("unexpected", diff.unexpected),
                ("status mismatch", diff.status_mismatch),
            ):
                lines.extend(f"    {label}: {_brief(row)}" for row in rows[:examples])
                if len(rows) > examples:
                    lines.append(f"    {label}: ... and {len(rows) - examples} more")
        dl = self.dead_letters
        lines.append(
            f"  dead letters: expected {dl.expected}, stored {dl.stored}, matched {dl.matched}; "
            f"missing {len(dl.missing)}, unexpected {len(dl.unexpected)}, "
            f"repeated {len(dl.repeated)} (allowed)"
        )
        for label, rows in (("missing", dl.missing), ("unexpected", dl.unexpected), ("repeated", dl.repeated)):
            lines.extend(f"    {label}: {_brief(row)}" for row in rows[:examples])
            if len(rows) > examples:
                lines.append(f"    {label}: ... and {len(rows) - examples} more")
        homes = self.homes()
        if len(homes) > 1:
            lines.append(f"  per account/region ({len(homes)}):")
            for home, entry in homes.items():
                counts = ", ".join(
                    f"{label} {c['matched']}/{c['expected']}" + (f" ({c['problems']} wrong)" if c["problems"] else "")
                    for label, c in entry.items()
                    if label != "ok"
                )
                lines.append(f"    {home}: {counts} {'OK' if entry['ok'] else 'MISMATCH'}")
        if dl.reasons:
            lines.append(
                "  dead-letter reason codes by poison kind: "
                + ", ".join(
                    f"{kind}={'/'.join(f'{code}:{n}' for code, n in sorted(codes.items()))}"
                    for kind, codes in sorted(dl.reasons.items())
                )
            )
        return "\n".join(lines)


def home_of(arn: str) -> str:
    """``ACCOUNT/REGION`` of an ARN (``arn:aws:ecs:REGION:ACCOUNT:...``); ``?`` when it is not one."""
    parts = arn.split(":")
    return f"{parts[4]}/{parts[3]}" if len(parts) > 5 and parts[0] == "arn" else "?"


def _brief(row: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in row.items())


def _version(value: Any) -> int | str | None:
    """A stored version as an int; the raw text when it is not an integer (shown, never equal to a truth)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if number == number.to_integral_value():
        return int(number)
    return str(value)


def _compare_table(
    name: str, key: str, status_attr: str, expected: Mapping[str, Mapping[str, Any]], rows: Iterable[Mapping[str, Any]]
) -> TableDiff:
    diff = TableDiff(name, expected=len(expected))
    diff.expected_by_home.update(home_of(arn) for arn in expected)
    seen: set[str] = set()
    for row in rows:
        diff.stored += 1
        arn = str(row.get(key))
        seen.add(arn)
        stored_v = _version(row.get("version"))
        stored_s = row.get(status_attr)
        want = expected.get(arn)
        if want is None:
            diff.unexpected.append({"arn": arn, "stored": stored_v, "truth": None, "why": "ARN not in truth"})
            continue
        want_v, want_s = int(want["version"]), want[status_attr]
        if not isinstance(stored_v, int):
            diff.unexpected.append({"arn": arn, "stored": stored_v, "truth": want_v, "why": "not an integer"})
        elif stored_v < want_v:
            diff.regressed.append({"arn": arn, "stored": stored_v, "truth": want_v})
        elif stored_v > want_v:
            diff.unexpected.append({"arn": arn, "stored": stored_v, "truth": want_v, "why": "newer than truth"})
        elif stored_s != want_s:
            diff.status_mismatch.append({"arn": arn, "version": stored_v, "stored": stored_s, "truth": want_s})
        else:
            diff.matched += 1
            diff.matched_by_home[home_of(arn)] += 1
    diff.missing = [
        {"arn": arn, "truth": int(want["version"]), status_attr: want[status_attr]}
        for arn, want in expected.items()
        if arn not in seen
    ]
    return diff


def _compare_dead_letters(
    poison: list[Mapping[str, Any]], ignored_sha: Iterable[str], rows: Iterable[Mapping[str, Any]]
) -> DeadLetterDiff:
    diff = DeadLetterDiff(expected=len(poison))
    wanted: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for entry in poison:
        wanted[entry["sha256"]].append(entry)
    known = {sha: list(entries) for sha, entries in wanted.items()}
    ignored = set(ignored_sha)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        if "dataSha256" not in row and "#part" in str(row.get("sequenceNumber", "")):
            continue  # a continuation part of a large dead letter (its first item carries the hash)
        diff.stored += 1
        sha = str(row.get("dataSha256"))
        brief = {
            "shardId": row.get("shardId"),
            "sequenceNumber": row.get("sequenceNumber"),
            "reasonCode": row.get("reasonCode"),
            "partitionKey": row.get("partitionKey"),
            "sha256": sha,
        }
        if wanted.get(sha):
            entry = wanted[sha].pop()
            diff.matched += 1
            reasons[str(entry.get("kind"))][str(row.get("reasonCode"))] += 1
        elif sha in known:
            diff.repeated.append({**brief, "kind": known[sha][0].get("kind")})
        else:
            if "dataSha256" not in row:
                why = "dead letter without dataSha256"
            elif sha in ignored:
                why = "an ignored-type event was dead-lettered"
            else:
                why = "no poison record has these bytes"
            diff.unexpected.append({**brief, "why": why})
    diff.missing = [
        {"kind": e.get("kind"), "partitionKey": e.get("partitionKey"), "sha256": sha, "length": e.get("length")}
        for sha, entries in wanted.items()
        for e in entries
    ]
    diff.reasons = {kind: dict(codes) for kind, codes in reasons.items()}
    return diff


def compare(
    truth: Mapping[str, Any],
    tasks: Iterable[Mapping[str, Any]],
    instances: Iterable[Mapping[str, Any]],
    dead_letters: Iterable[Mapping[str, Any]],
) -> Report:
    """Pure comparison. ``truth`` is a truth file's content (``GroundTruth.to_dict()`` or ``load_truth``);
    rows are plain dicts: tasks ``{taskArn, version, lastStatus}``, instances ``{containerInstanceArn, version,
    status}``, dead letters ``{dataSha256, reasonCode, partitionKey, shardId, sequenceNumber}`` (other keys are
    ignored; versions may be int, Decimal or numeric strings)."""
    ignored = truth.get("ignored", {})
    return Report(
        tasks=_compare_table("tasks", TASK_KEY, "lastStatus", truth.get("tasks", {}), tasks),
        instances=_compare_table(
            "container instances", INSTANCE_KEY, "status", truth.get("containerInstances", {}), instances
        ),
        dead_letters=_compare_dead_letters(truth.get("poison", []), ignored.get("sha256", []), dead_letters),
        truth_totals=dict(truth.get("totals", {})),
    )

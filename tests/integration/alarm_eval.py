"""A small, pure evaluator of a CloudWatch alarm as the templates define it, so that alarms are tested by what they
do: fed the metric samples of a healthy run and of the failure an alarm exists for, it says whether the alarm would
be in ALARM. Not a test module.

What it models (AWS docs: "Using Amazon CloudWatch alarms", "Configuring how CloudWatch alarms treat missing
data", "Metric math syntax and functions"):
- each metric of the alarm is aggregated per its Period with its statistic (Sum, Maximum, Minimum, Average,
  SampleCount) from raw samples, matched by namespace, name and exactly the alarm's dimensions; a period without a
  sample is missing;
- metric math: + - * /, numbers, the ids of the alarm's metrics, FILL(m, value) and IF(condition, a, b) with one
  comparison as the condition; a missing input makes the result missing, except inside FILL;
- the alarm looks at its last EvaluationPeriods datapoints and is in ALARM when at least DatapointsToAlarm
  (default EvaluationPeriods) of them breach; a missing datapoint is breaching or not as TreatMissingData says
  (``missing`` and ``ignore``: not counted; all missing: INSUFFICIENT_DATA).
What it leaves out: CloudWatch's look-back for missing data at the edge of the window and its partial-datapoint
rules, percentiles, and units (CloudWatch compares numbers as published, which is exactly why the unit matters).

``resolve`` turns a template's alarm (Ref, Fn::If, Fn::Sub, Fn::ImportValue) into plain values for one set of
parameters, conditions and the core stack's exports."""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

Sample = tuple[float, float]  # (seconds since the start of the run, value)
#: (namespace, metric name, frozenset of (dimension name, value)) -> samples
Samples = dict[tuple[str, str, frozenset[tuple[str, str]]], list[Sample]]

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "Average": lambda xs: sum(xs) / len(xs),
    "SampleCount": lambda xs: float(len(xs)),
}


def resolve(value: Any, parameters: dict[str, str], conditions: dict[str, bool], imports: dict[str, str]) -> Any:
    """The value with every intrinsic function the alarms use replaced (pure)."""

    def go(v: Any) -> Any:
        if isinstance(v, list):
            return [go(x) for x in v]
        if not isinstance(v, dict):
            return v
        if set(v) == {"Ref"}:
            return parameters[v["Ref"]]
        if set(v) == {"Fn::If"}:
            name, yes, no = v["Fn::If"]
            return go(yes if conditions[name] else no)
        if set(v) == {"Fn::ImportValue"}:
            return imports[go(v["Fn::ImportValue"])]
        if set(v) == {"Fn::Sub"}:
            text, names = (v["Fn::Sub"], {}) if isinstance(v["Fn::Sub"], str) else v["Fn::Sub"]
            values = {**parameters, **{k: go(x) for k, x in names.items()}}
            return re.sub(r"\$\{([\w:]+)\}", lambda m: str(values[m.group(1)]), text)
        return {k: go(x) for k, x in v.items()}

    return go(value)


@dataclass(frozen=True)
class Verdict:
    state: str  # ALARM, OK or INSUFFICIENT_DATA
    datapoints: list[float | None]


def _buckets(samples: list[Sample], period: int, stat: str, end: float) -> list[float | None]:
    count = int(end // period)
    grouped: list[list[float]] = [[] for _ in range(count)]
    for t, value in samples:
        if 0 <= t < count * period:
            grouped[int(t // period)].append(value)
    return [STATISTICS[stat](g) if g else None for g in grouped]


def _metric_series(metric: dict[str, Any], period: int, stat: str, samples: Samples, end: float) -> list[float | None]:
    key = (metric["Namespace"], metric["MetricName"], frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"]))
    return _buckets(samples.get(key, []), period, stat, end)


def _expression(text: str, inputs: dict[str, float | None]) -> float | None:
    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            return inputs[node.id]
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if left is None or right is None:
                return None
            ops: dict[type, Callable[[float, float], float]] = {
                ast.Add: operator.add,
                ast.Sub: operator.sub,
                ast.Mult: operator.mul,
                ast.Div: operator.truediv,
            }
            return ops[type(node.op)](left, right)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right = ev(node.left), ev(node.comparators[0])
            if left is None or right is None:
                return None
            cmp = {ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le}
            return cmp[type(node.ops[0])](left, right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "FILL":
                value = ev(node.args[0])
                return ev(node.args[1]) if value is None else value
            if node.func.id == "IF":
                condition = ev(node.args[0])
                if condition is None:
                    return None
                return ev(node.args[1]) if condition else ev(node.args[2])
        raise ValueError(f"metric math this evaluator does not know: {ast.dump(node)}")

    result: float | None = ev(ast.parse(text, mode="eval"))
    return result


def series(alarm: dict[str, Any], samples: Samples, end: float) -> tuple[int, list[float | None]]:
    """(period, datapoints) of a resolved alarm over [0, end) (pure)."""
    if "MetricName" in alarm:
        period = int(alarm["Period"])
        return period, _metric_series(alarm, period, alarm["Statistic"], samples, end)
    inputs: dict[str, list[float | None]] = {}
    periods = set()
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            stat = query["MetricStat"]
            periods.add(int(stat["Period"]))
            inputs[query["Id"]] = _metric_series(stat["Metric"], int(stat["Period"]), stat["Stat"], samples, end)
    (period,) = periods  # one period per alarm, as CloudWatch requires
    (returned,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    if "MetricStat" in returned:
        return period, inputs[returned["Id"]]
    count = len(next(iter(inputs.values())))
    return period, [_expression(returned["Expression"], {k: v[i] for k, v in inputs.items()}) for i in range(count)]


def evaluate(alarm: dict[str, Any], samples: Samples, end: float) -> Verdict:
    """The alarm's state at ``end`` seconds, from its last EvaluationPeriods datapoints (pure)."""
    _, points = series(alarm, samples, end)
    window = points[-int(alarm["EvaluationPeriods"]) :]
    needed = int(alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"]))
    compare, threshold = COMPARISONS[alarm["ComparisonOperator"]], float(alarm["Threshold"])
    missing = alarm.get("TreatMissingData", "missing")
    breaching = 0
    counted = 0
    for value in window:
        if value is None:
            if missing in ("breaching", "notBreaching"):
                counted += 1
                breaching += missing == "breaching"
            continue
        counted += 1
        breaching += compare(float(value), threshold)
    if counted == 0:
        return Verdict("INSUFFICIENT_DATA", window)
    return Verdict("ALARM" if breaching >= needed else "OK", window)

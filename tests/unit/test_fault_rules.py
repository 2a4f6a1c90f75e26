"""The fault proxy's rules as JSON, checked before the proxy starts, and how it names a request's operation."""

from __future__ import annotations

from typing import Any

import pytest

from workshop.errors import FaultConfigError
from workshop.testing.fault_proxy import Rule, operation_of


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"kind": "meteor"}, "unknown"),
        ({"kind": "throttle", "probability": 1.5}, "between 0 and 1"),
        ({"kind": "throttle", "start_s": 2, "stop_s": 1}, "before start_s"),
        ({"kind": "slow"}, "delay_s"),
        ({"kind": "slow", "delay_s": 1, "then": "explode"}, "reply"),
        ({"kind": "throttle", "probabilty": 0.5}, "unknown rule fields"),
        ({"kind": "throttle", "operations": "PutItem"}, "list of names"),
    ],
)
def test_bad_rules_say_what_is_wrong(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultConfigError, match=message):
        Rule.from_dict(raw)


def test_a_requests_operation_is_read_from_its_target_header() -> None:
    assert operation_of("DynamoDB_20120810.PutItem") == "PutItem"
    assert operation_of(None) == ""

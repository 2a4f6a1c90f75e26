"""The local stack's pure parts: the properties file rendered for the emulators, and finding kinesis-mock."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.config import parse_properties
from workshop.errors import StackError
from workshop.local.stack import LOCAL_PROPERTIES, find_kinesis_mock, render_properties


def test_render_properties_replaces_every_uncommented_occurrence_and_appends_missing_keys() -> None:
    text = (
        "# kinesisEndpoint = keep this comment\n"
        "kinesisEndpoint = http://old:1\n"
        "streamName: s\n"
        "long = a \\\n"
        "  kinesisEndpoint\n"
        "kinesisEndpoint=http://old:2\n"
    )
    out = render_properties(text, {"kinesisEndpoint": "http://127.0.0.1:9", "regionName": "eu-west-1"})
    assert "# kinesisEndpoint = keep this comment" in out
    assert "http://old" not in out
    assert "  kinesisEndpoint\n" in out  # a continuation line is not a key
    props = parse_properties(out)
    assert props["kinesisEndpoint"] == "http://127.0.0.1:9"
    assert props["regionName"] == "eu-west-1"
    assert props["streamName"] == "s"


def test_local_properties_template_has_no_endpoints_until_rendered(tmp_path: Path) -> None:
    props = parse_properties(LOCAL_PROPERTIES.read_text())
    assert "kinesisEndpoint" not in props and "dynamoDBEndpoint" not in props
    assert props["executableName"] == "ecs-state-processor"
    assert props["retrievalMode"] == "POLLING"
    assert props["callProcessRecordsEvenForEmptyRecordList"] == "true"
    assert int(props["shutdownGraceMillis"]) > int(props["failoverTimeMillis"])


def test_missing_kinesis_mock_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ECS_STATE_KINESIS_MOCK", str(tmp_path / "nowhere" / "main.js"))
    with pytest.raises(StackError, match="scripts/bootstrap"):
        find_kinesis_mock()

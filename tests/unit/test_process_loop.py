"""The processor's MultiLang loop (``shard/loop.Process``): amazon_kclpy's, except that a line read from the daemon
is let go of once parsed, before its action runs (a 10,000-record call's line is ~40 MB of text)."""

from __future__ import annotations

import gc
import io
import json
import weakref
from typing import Any

from amazon_kclpy.v3 import processor as v3

from processor.shard.loop import Process


class Line(str):
    """A str that can be watched with a weak reference."""


class Lines:
    """A stdin whose lines are ``Line`` objects, each watched."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = [Line(line + "\n") for line in lines]
        self.watched: list[weakref.ref[Line]] = []

    def readline(self) -> str:
        if not self._lines:
            return ""
        line = self._lines.pop(0)
        self.watched.append(weakref.ref(line))
        return line


class Watching(v3.RecordProcessorBase):
    def __init__(self, stdin: Lines) -> None:
        self.stdin = stdin
        self.alive_during: list[bool] = []

    def initialize(self, initialize_input: Any) -> None:
        self._look()

    def process_records(self, process_records_input: Any) -> None:
        self._look()

    def lease_lost(self, lease_lost_input: Any) -> None:
        pass

    def shard_ended(self, shard_ended_input: Any) -> None:
        pass

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        pass

    def _look(self) -> None:
        gc.collect()
        self.alive_during.append(self.stdin.watched[-1]() is not None)


def test_the_line_of_a_call_is_no_longer_referenced_while_its_action_runs_and_every_action_is_answered() -> None:
    record = {
        "action": "record",
        "data": "e30=",
        "partitionKey": "k",
        "sequenceNumber": "1",
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": 0,
    }
    stdin = Lines(
        [
            json.dumps(
                {
                    "action": "initialize",
                    "shardId": "shardId-0",
                    "sequenceNumber": "TRIM_HORIZON",
                    "subSequenceNumber": 0,
                }
            ),
            json.dumps({"action": "processRecords", "millisBehindLatest": 0, "records": [record]}),
        ]
    )
    out = io.StringIO()
    processor = Watching(stdin)
    Process(processor, input_file=stdin, output_file=out, error_file=io.StringIO()).run()
    assert processor.alive_during == [False, False]
    replies = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert replies == [
        {"action": "status", "responseFor": "initialize"},
        {"action": "status", "responseFor": "processRecords"},
    ]

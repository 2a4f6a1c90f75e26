from __future__ import annotations

from workshop.local.demo import flush_totals


def test_flush_totals_reads_wrapped_and_raw_processor_lines() -> None:
    lines = [
        '11:52:04.719 ERROR [multi-lang-daemon-0001] s.a.k.multilang.DrainChildSTDERRTask - Received error line '
        'from subprocess [{"ts":1.0,"level":"INFO","event":"flush","records":10,"writes":4,"stale":1,"ignored":2,'
        '"dead_letters":1,"requests":5,"retries":0}] for shard shardId-000000000000',
        '{"ts":2.0,"level":"INFO","event":"flush","records":5,"writes":1,"stale":0,"ignored":0,"dead_letters":0,'
        '"requests":1,"retries":3}',
        '{"ts":3.0,"level":"INFO","event":"initialize","shard":"s"}',
        'INFO something else entirely {"ts" broken',
    ]
    totals = flush_totals(lines)
    assert (totals.flushes, totals.records, totals.writes, totals.stale, totals.requests, totals.retries) == \
        (2, 15, 5, 1, 6, 3)

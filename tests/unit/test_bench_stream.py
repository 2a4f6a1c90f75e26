"""The benchmark's pure parts: the stream split by shard and by flush window, the floor, the arrival clock, the
options, and the chart. No timing assertions."""

from __future__ import annotations

import argparse
import struct
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from processor.loadgen.records import Record
from workshop.bench.chart import Panel, write_chart
from workshop.bench.runner import add_arguments, config_from_args, volume_config_from_args
from workshop.bench.stream import (
    FLEET,
    BenchConfig,
    arrival_seconds,
    build_stream,
    distinct_per_window,
    flush_windows,
    shard_of,
)
from workshop.bench.volume import VolumeConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_shard_of_splits_the_md5_hash_range_evenly_as_kinesis_does() -> None:
    # MD5("a") = 0cc175b9...: in the first of 4 shards, and in shard 0 of 16 (0x0c < 0x10)
    assert shard_of("a", 4) == 0 and shard_of("a", 16) == 0
    assert shard_of("b", 4) == 2  # MD5("b") = 92eb5ffe... -> 0x92 * 4 // 256 = 2
    spread = Counter(shard_of(f"arn:aws:ecs:us-east-1:1:task/c/{i}", 4) for i in range(4000))
    assert set(spread) == {0, 1, 2, 3} and min(spread.values()) > 900
    assert all(shard_of(f"k{i}", 1) == 0 for i in range(100))


def test_flush_windows_cut_a_shard_by_arrival_time_and_the_floor_counts_distinct_arns_per_window() -> None:
    def rec(arn: str) -> Record:
        return Record(arn, b"{}", "task", arn=arn, version=1)

    records = [rec("a"), rec("a"), rec("b"), Record("p", b"x", "poison", "truncated"), rec("a"), rec("c")]
    arrivals = [0.0, 1.0, 4.9, 5.0, 6.0, 12.0]
    indices = list(range(len(records)))
    windows = flush_windows(indices, arrivals, 5.0)
    assert windows == [(0, 3), (3, 5), (5, 6)]
    # window 1: a, b; window 2: a (the poison record needs no state write); window 3: c
    assert distinct_per_window(records, [indices], [windows]) == 4
    # two shards: each ARN lives in one shard, windows are per shard
    left, right = [0, 1, 4], [2, 3, 5]
    assert (
        distinct_per_window(
            records, [left, right], [flush_windows(left, arrivals, 5.0), flush_windows(right, arrivals, 5.0)]
        )
        == 4
    )


def test_arrival_clock_follows_the_simulated_fleet_and_never_goes_back() -> None:
    stream = build_stream(BenchConfig(events=400, fleet=replace(FLEET, reorder_window=20, poison_rate=0.05, seed=3)))
    arrivals = stream.arrivals
    assert arrivals[0] == 0.0 and arrivals[-1] > 5
    assert all(b >= a for a, b in zip(arrivals, arrivals[1:]))
    assert arrival_seconds(stream.records, rate=100.0)[-1] == pytest.approx(3.99)
    assert sorted(i for ix in stream.shard_indices for i in ix) == list(range(400))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="--contenders"):
        config_from_args(_parser().parse_args(["--contenders", "ours,nope"]))
    cfg = config_from_args(_parser().parse_args(["--events", "10", "--contenders", "ours"]))
    assert cfg.contenders == ("ours",) and cfg.events == 10
    with pytest.raises(ValueError, match="--poison-rate"):  # the producer's own check of its options
        config_from_args(_parser().parse_args(["--poison-rate", "1.5"]))


def test_the_fleet_options_given_reach_the_producers_options_the_rest_stay_the_profiles() -> None:
    cfg = config_from_args(_parser().parse_args(["--tasks", "70", "--seed", "9", "--reorder-window", "3"]))
    assert cfg.options() == replace(FLEET, tasks=70, seed=9, reorder_window=3)
    volume = volume_config_from_args(_parser().parse_args(["--profile-volume", "--poison-rate", "0.02"]))
    assert volume.bench.options() == replace(VolumeConfig().bench.fleet, poison_rate=0.02)
    assert volume.bench.options().tasks == 5000 and cfg.flat()["tasks"] == 70


def _png_size(data: bytes) -> tuple[int, int]:
    """The width and height of a PNG, after checking its signature and that it holds a real image (an IHDR
    first, image data, an IEND last, and more than a few bytes of it: matplotlib drew something)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert b"IDAT" in data and data[-8:-4] == b"IEND"
    assert len(data) > 10_000
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_chart_is_a_png_drawn_by_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = write_chart(
        tmp_path / "chart.png",
        "T",
        ["A", "B\nsecond line"],
        [Panel("X", [1.0, None], "{:.1f}", [("floor", 0.5)]), Panel("Y", [0.0, 2.0]), Panel("Z", [0.0, 0.0], "{:.0f}")],
        ["footer one", "footer two"],
    )
    assert path == tmp_path / "chart.png"
    width, height = _png_size(path.read_bytes())
    assert width == 1240 and height > 2 * 400  # two columns of 6.2 in at 100 dpi; two rows of panels

"""The volume benchmark's pure parts: DynamoDB item sizes as the capacity meter prices them
(workshop/bench/moto_keepalive.py), and the docs/benchmarks.md section the report regenerates
(workshop/bench/volume_report.py)."""

from __future__ import annotations

from pathlib import Path

from workshop.bench.moto_keepalive import item_size, value_size
from workshop.bench.volume_report import END, START, update_doc


def test_item_size_counts_names_and_values_as_dynamodb_does() -> None:
    assert value_size({"S": "héllo"}) == 6  # UTF-8 bytes
    assert value_size({"N": "12345"}) == 4  # ~1 byte per 2 significant digits + 1
    assert value_size({"B": "AAF6bGli"}) == 6  # base64 on the wire, 6 bytes stored
    assert value_size({"BOOL": True}) == value_size({"NULL": True}) == 1
    assert value_size({"L": [{"S": "ab"}, {"N": "1"}]}) == 3 + (1 + 2) + (1 + 2)
    assert value_size({"M": {"k": {"S": "v"}}}) == 3 + 1 + 1 + 1
    assert value_size({"SS": ["a", "bc"]}) == 3
    assert item_size({"taskArn": {"S": "x" * 1017}}) == 1024  # exactly one write unit
    assert item_size({"taskArn": {"S": "x" * 1018}}) == 1025  # two


def test_the_section_between_the_markers_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    readme = tmp_path / "benchmarks.md"
    readme.write_text(f"# title\n\nbefore\n{START}\nold table\n{END}\nafter\n", encoding="utf-8")
    assert update_doc(readme, "| new | table |")
    assert readme.read_text(encoding="utf-8") == f"# title\n\nbefore\n{START}\n| new | table |\n{END}\nafter\n"
    assert update_doc(readme, "again")  # idempotent: the markers stay
    assert readme.read_text(encoding="utf-8").count(START) == 1
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n", encoding="utf-8")
    assert not update_doc(plain, "x") and plain.read_text(encoding="utf-8") == "no markers\n"

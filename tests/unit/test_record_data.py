"""The KCL adapter's record decoding (``shard/record_processor.record_data``): the same bytes as amazon_kclpy's
``Record.binary_data``, for every input the daemon can send and for the ones it cannot."""

from __future__ import annotations

import base64
import binascii

import pytest
from amazon_kclpy.messages import Record
from hypothesis import given
from hypothesis import strategies as st

from processor.shard.record_processor import record_data


def kcl_record(data: str) -> Record:
    return Record(
        {
            "sequenceNumber": "1",
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": 0,
            "partitionKey": "k",
            "action": "record",
            "data": data,
        }
    )


@given(st.binary(max_size=5000))
def test_a_record_decodes_to_the_bytes_amazon_kclpy_gives(raw: bytes) -> None:
    record = kcl_record(base64.b64encode(raw).decode("ascii"))
    assert record_data(record) == record.binary_data == raw


@pytest.mark.parametrize("text", ["aGVs\nbG8=", " aGVsbG8= ", "aGVs*bG8=", "aGVsbG8=\n", "aGVsbG8==="])
def test_base64_the_strict_decoder_refuses_is_decoded_leniently_as_amazon_kclpy_decodes_it(text: str) -> None:
    record = kcl_record(text)
    assert record_data(record) == record.binary_data == b"hello"


def test_base64_that_no_decoder_accepts_fails_as_amazon_kclpy_fails() -> None:
    record = kcl_record("aGVsbG8")  # no padding
    with pytest.raises(binascii.Error):
        record.binary_data
    with pytest.raises(binascii.Error):
        record_data(record)

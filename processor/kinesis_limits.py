"""Kinesis PutRecords limits, and packing records into requests that respect them. Pure.

A PutRecords request takes at most 500 records and 5 MiB; one record at most 1 MiB and a partition key of at most
256 characters, where a record's size is its data plus its partition key's UTF-8 bytes. Shared by the producer and
the redrive commands (every writer of our stream).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key
MAX_PARTITION_KEY_CHARS = 256

T = TypeVar("T")


def record_size(data: bytes, partition_key: str) -> int:
    """What a record counts against PutRecords' limits: data plus partition key bytes."""
    return len(data) + len(partition_key.encode("utf-8"))


def size_batches(
    items: Iterable[T],
    size_of: Callable[[T], int],
    max_records: int = MAX_BATCH_RECORDS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[T]]:
    """``items`` in order, packed into requests of at most ``max_records`` and ``max_bytes`` (an item larger than
    ``max_bytes`` on its own gets a request of its own)."""
    batch: list[T] = []
    size = 0
    for item in items:
        n = size_of(item)
        if batch and (len(batch) >= max_records or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += n
    if batch:
        yield batch

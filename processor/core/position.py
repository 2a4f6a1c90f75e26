"""Where a record sits in its shard: the one position type every layer shares. Pure.

A position is what a checkpoint names and what a stored item and a dead letter record as their source, so it
keeps Kinesis's own strings: a sequence number is never parsed or compared here (only the order the daemon
delivers records in counts), and a KPL sub-record is told apart by its sub-sequence number, 0 for a plain record.
A dead letter's range key is the sequence number alone for a plain record and ``<seq>:<subseq>`` for a
sub-record, so the sub-records of one Kinesis record each get their own dead letter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record sits in its shard."""

    shard_id: str
    sequence_number: str
    sub_sequence_number: int = 0

    def dead_letter_key(self) -> str:
        if self.sub_sequence_number:
            return f"{self.sequence_number}:{self.sub_sequence_number}"
        return self.sequence_number

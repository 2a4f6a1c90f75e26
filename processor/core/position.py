"""Where a record sits in its shard: the one position type every layer shares. Pure."""

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

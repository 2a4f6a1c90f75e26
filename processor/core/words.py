"""Enums whose members are words: ``Word``, a ``str`` enum that prints, formats and serialises as its value.

A kind of table, a drift state or a lease's state is shown to people and written to JSON by its word; making the
enum a ``str`` keeps comparisons with the word (and with older JSON) true, and ``__str__`` keeps f-strings from
showing the class name. Python 3.11's ``StrEnum`` does the same; the product runs on 3.10 too."""

from __future__ import annotations

from enum import Enum


class Word(str, Enum):
    """A member equal to, and printed as, its value."""

    def __str__(self) -> str:
        return str(self.value)

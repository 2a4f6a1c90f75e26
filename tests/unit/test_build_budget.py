"""The writer's build budget (processor/shard/build_budget.py): big records are built a bounded few at once, small
ones never wait, one record always gets through, and what is held is given back however the block ends."""

from __future__ import annotations

import threading

import pytest

from processor.shard.build_budget import SMALL_RECORD_BYTES, BuildBudget

MIB = 1024 * 1024


def _try_in_thread(budget: BuildBudget, size: int) -> tuple[threading.Thread, threading.Event, threading.Event]:
    entered, leave = threading.Event(), threading.Event()

    def run() -> None:
        with budget.hold(size):
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, entered, leave


def test_a_big_record_waits_while_the_budget_is_taken_and_goes_once_it_is_given_back() -> None:
    budget = BuildBudget(limit=4 * MIB)
    with budget.hold(3 * MIB):
        thread, entered, leave = _try_in_thread(budget, 2 * MIB)
        assert not entered.wait(0.3)  # bounded wait for something that must not happen
        assert budget.held == 3 * MIB
    assert entered.wait(10)
    assert budget.held == 2 * MIB
    leave.set()
    thread.join(10)
    assert budget.held == 0


def test_small_records_never_wait_and_are_not_counted() -> None:
    budget = BuildBudget(limit=4 * MIB)
    with budget.hold(4 * MIB):
        thread, entered, leave = _try_in_thread(budget, SMALL_RECORD_BYTES)
        assert entered.wait(10)
        assert budget.held == 4 * MIB
        leave.set()
        thread.join(10)


def test_a_record_larger_than_the_budget_is_built_alone_rather_than_never() -> None:
    budget = BuildBudget(limit=1 * MIB)
    with budget.hold(3 * MIB):
        assert budget.held == 3 * MIB
    assert budget.held == 0


def test_what_is_held_is_given_back_when_the_build_raises() -> None:
    budget = BuildBudget(limit=4 * MIB)
    with pytest.raises(RuntimeError):
        with budget.hold(2 * MIB):
            raise RuntimeError("the put failed")
    assert budget.held == 0
    with budget.hold(4 * MIB):
        assert budget.held == 4 * MIB

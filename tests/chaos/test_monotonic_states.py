"""monotonic_states: backwards moves between non-overlapping reads, and read-your-writes."""

from __future__ import annotations

from checkers import monotonic_states
from checkers.rundata import Run

from .builders import HistoryBuilder


def _check(h: HistoryBuilder) -> dict:
    return monotonic_states.check(Run.from_parts(history=h.build()))


def test_a_job_moving_forward_through_a_retry_is_valid() -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5)
         .get(1, "j1", "QUEUED", 0, 10, 12).get(1, "j1", "RUNNING", 1, 20, 22)
         .get(1, "j1", "QUEUED", 1, 30, 32)  # attempt 1 failed: waiting for attempt 2
         .get(1, "j1", "ASSIGNED", 2, 40, 42).get(1, "j1", "SUCCEEDED", 2, 50, 52)
         .get(1, "j1", "SUCCEEDED", 2, 60, 62))
    result = _check(h)
    assert result["valid"], result
    assert result["reads"] == 6


def test_overlapping_reads_may_complete_out_of_order() -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5)
         .get(1, "j1", "RUNNING", 1, 10, 50)
         .get(2, "j1", "QUEUED", 0, 20, 60))  # invoked before the RUNNING read completed
    assert _check(h)["valid"]


def test_a_state_moving_backwards_is_caught() -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5)
         .get(1, "j1", "RUNNING", 1, 10, 20)
         .get(2, "j1", "ASSIGNED", 1, 30, 40))
    result = _check(h)
    assert not result["valid"] and result["backwards"] == 1
    example = result["examples"][0]
    assert example["earlier"]["state"] == "RUNNING" and example["later"]["state"] == "ASSIGNED"


def test_a_stale_read_of_an_older_state_is_caught_and_marked_stale() -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5)
         .get(1, "j1", "SUCCEEDED", 1, 10, 20)
         .get(2, "j1", "RUNNING", 1, 30, 40, stale=True))
    result = _check(h)
    assert not result["valid"] and result["backwards"] == 1
    assert result["involving_stale_reads"] == 1 and result["examples"][0]["later"]["stale"] is True


def test_a_terminal_state_that_changes_is_caught() -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5)
         .get(1, "j1", "FAILED", 3, 10, 20).cancel(2, "j1", "CANCELLED", 30, 40, attempt=3))
    result = _check(h)
    assert not result["valid"] and result["terminal_changed"] == 1


def test_not_found_after_the_submit_was_acknowledged_is_caught() -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5)
         .get(1, "j1", "NOT_FOUND", 0, 10, 20, stale=True))
    result = _check(h)
    assert not result["valid"] and result["not_found_after_submit"] == 1
    assert result["examples"][0]["read"]["index"] == 2


def test_not_found_while_the_submit_is_in_flight_is_fine() -> None:
    h = HistoryBuilder().submit(0, "k1", "j1", 0, 50).get(1, "j1", "NOT_FOUND", 0, 10, 20)
    assert _check(h)["valid"]


def test_an_unknown_state_name_is_reported() -> None:
    h = HistoryBuilder().submit(0, "k1", "j1", 0, 5).get(1, "j1", "EXPLODED", 0, 10, 20)
    result = _check(h)
    assert not result["valid"] and result["unknown_state"] == 1

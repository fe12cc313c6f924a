"""no_overlap and figures: ledger intervals, pause excuses, failover and requeue measurements."""

from __future__ import annotations

from checkers import figures, no_overlap
from checkers.rundata import Run

from .builders import RUN_INFO, HistoryBuilder, ledger_line


def _beats(job_id: str, attempt: int, executor: str, start_ms: int, end_ms: int) -> list[str]:
    return [ledger_line(job_id, attempt, executor, t) for t in range(start_ms, end_ms + 1, 100)]


def test_attempts_one_after_the_other_do_not_overlap() -> None:
    ledger = _beats("j1", 1, "e1", 0, 300) + _beats("j1", 2, "e2", 400, 600) + _beats("j2", 1, "e1", 0, 600)
    result = no_overlap.check(Run.from_parts(ledger=ledger, info=RUN_INFO))
    assert result["valid"] and result["attempts"] == 3 and result["heartbeats_seen"], result


def test_two_attempts_running_at_once_are_caught() -> None:
    ledger = _beats("j1", 1, "e1", 0, 500) + _beats("j1", 2, "e2", 300, 600)
    result = no_overlap.check(Run.from_parts(ledger=ledger, info=RUN_INFO))
    assert not result["valid"] and result["overlaps"] == 1
    example = result["examples"][0]
    assert example["older"]["attempt"] == 1 and example["newer"]["executor"] == "e2"
    assert example["overlap_ms"] == 200


def test_an_overlap_after_the_older_executor_was_paused_is_excused() -> None:
    ledger = _beats("j1", 1, "e1", 0, 500) + _beats("j1", 2, "e2", 300, 600)
    history = HistoryBuilder().fault("pause-executor", 100, 450, ["e1"]).build()
    result = no_overlap.check(Run.from_parts(history=history, ledger=ledger, info=RUN_INFO))
    assert result["valid"] and result["overlaps"] == 0 and result["excused"] == 1
    assert result["excused_examples"][0]["excused_by"]["f"] == "pause-executor"


def test_a_pause_of_another_executor_excuses_nothing() -> None:
    ledger = _beats("j1", 1, "e1", 0, 500) + _beats("j1", 2, "e2", 300, 600)
    history = HistoryBuilder().fault("pause-executor", 100, 450, ["e3"]).build()
    assert not no_overlap.check(Run.from_parts(history=history, ledger=ledger, info=RUN_INFO))["valid"]


def test_a_start_only_ledger_says_the_check_is_weak() -> None:
    ledger = [ledger_line("j1", 1, "e1", 0), ledger_line("j1", 2, "e2", 50), "j1 2 e2"]  # a torn last line
    result = no_overlap.check(Run.from_parts(ledger=ledger, info=RUN_INFO))
    assert result["valid"] and not result["heartbeats_seen"] and "start lines only" in result["note"]
    assert result["malformed_lines"] == 1


def test_failover_window_runs_to_the_first_ok_submit_invoked_after_the_fault() -> None:
    h = (HistoryBuilder().submit(0, "k0", "j0", 500, 600)
         .fault("kill-leader", 1000, 3000, ["n1"])
         .submit(1, "k1", None, 1200, 2200, type_="info")
         .submit(2, "k2", "j2", 1300, 2500).submit(3, "k3", "j3", 1400, 2400)
         .fault("kill", 4000, 5000, ["n2"])  # not the leader: not a failover
         .fault("pause", 6000, 7000, ["n3"], leader="n3")  # the leader, by the nemesis's word
         .submit(4, "k4", "j4", 6100, 6300))
    result = figures.check(Run.from_parts(history=h.build()))
    assert result["valid"]
    assert result["failover"] == {"count": 2, "median_ms": 850.0, "max_ms": 1400.0}


def test_requeue_delay_runs_from_the_executor_kill_to_the_next_attempt() -> None:
    h = HistoryBuilder().fault("kill-executor", 1000, 2000, ["e1"])
    ledger = [ledger_line("j1", 1, "e1", 500), ledger_line("j1", 2, "e2", 3000),
              ledger_line("j2", 1, "e1", 100), ledger_line("j3", 1, "e2", 100)]
    result = figures.check(Run.from_parts(history=h.build(), ledger=ledger, info=RUN_INFO))
    # j2 never re-ran: measured as missing; j3 ran elsewhere: not lost
    assert result["requeue"] == {"count": 1, "median_ms": 2000.0, "max_ms": 2000.0}
    assert result["requeue_not_measured"] == 1


def test_requeue_needs_the_clock_origin() -> None:
    h = HistoryBuilder().fault("kill-executor", 1000, 2000, ["e1"])
    result = figures.check(Run.from_parts(history=h.build(), ledger=[ledger_line("j1", 1, "e1", 500)]))
    assert result["valid"] and "monotonic origin" in result["requeue_note"]

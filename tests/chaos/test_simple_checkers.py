"""lost_writes, idempotency, liveness, fencing and log_prefix on small hand-written runs."""

from __future__ import annotations

import base64

from checkers import fencing, idempotency, liveness, log_prefix, lost_writes
from checkers.rundata import Run

from .builders import HistoryBuilder, final_state, job, ledger_line


def test_lost_writes_accepts_every_acknowledged_job_present() -> None:
    history = HistoryBuilder().submit(0, "k1", "j1", 0, 5).submit(1, "k2", None, 0, 9, type_="info").build()
    result = lost_writes.check(Run.from_parts(history=history, final_state=final_state(job("j1", "QUEUED"))))
    assert result["valid"] and result["acknowledged"] == 1


def test_lost_writes_catches_an_acknowledged_submit_missing_from_the_final_state() -> None:
    history = HistoryBuilder().submit(0, "k1", "j1", 0, 5).submit(1, "k2", "j2", 1, 6).build()
    result = lost_writes.check(Run.from_parts(history=history, final_state=final_state(job("j1", "QUEUED"))))
    assert not result["valid"]
    assert result["lost"] == 1
    assert result["examples"][0]["id"] == "j2" and result["examples"][0]["key"] == "k2"


def test_idempotency_accepts_a_resubmit_that_returns_the_same_job() -> None:
    history = HistoryBuilder().submit(0, "k1", "j1", 0, 5).submit(0, "k1", "j1", 10, 15).build()
    run = Run.from_parts(history=history, final_state=final_state(job("j1", "QUEUED", key="k1")))
    assert idempotency.check(run)["valid"]


def test_idempotency_catches_two_jobs_for_one_key_in_the_history() -> None:
    history = HistoryBuilder().submit(0, "k1", "j1", 0, 5).submit(1, "k1", "j2", 10, 15).build()
    run = Run.from_parts(history=history, final_state=final_state(job("j1", "QUEUED", key="k1")))
    result = idempotency.check(run)
    assert not result["valid"] and result["duplicate_keys_in_history"] == 1
    assert result["examples"][0]["key"] == "k1"
    assert set(result["examples"][0]["ids_by_submit_index"]) == {"j1", "j2"}


def test_idempotency_catches_two_jobs_sharing_a_key_in_the_final_state() -> None:
    state = final_state(job("j1", "QUEUED", key="k1"), job("j2", "QUEUED", key="k1"), job("j3", "QUEUED"))
    result = idempotency.check(Run.from_parts(final_state=state))
    assert not result["valid"] and result["duplicate_keys_in_final_state"] == 1
    assert result["examples"][0]["ids"] == ["j1", "j2"]


def test_liveness_wants_every_job_terminal() -> None:
    done = final_state(job("j1", "SUCCEEDED"), job("j2", "CANCELLED"))
    assert liveness.check(Run.from_parts(final_state=done))["valid"]
    stuck = liveness.check(Run.from_parts(final_state=final_state(job("j1", "SUCCEEDED"), job("j2", "RUNNING"))))
    assert not stuck["valid"] and stuck["examples"] == [{"id": "j2", "state": "RUNNING", "attempt": 0}]


def test_liveness_wants_some_job_to_succeed_in_a_run_of_many() -> None:
    failed = [job(f"j{i}", "FAILED") for i in range(25)]
    result = liveness.check(Run.from_parts(final_state=final_state(*failed)))
    assert not result["valid"] and result["none_succeeded"]
    assert liveness.check(Run.from_parts(final_state=final_state(*failed, job("j99", "SUCCEEDED"))))["valid"]


def _fencing(*jobs: dict, ledger: list[str]) -> dict:
    return fencing.check(Run.from_parts(final_state=final_state(*jobs), ledger=ledger))


def test_fencing_accepts_a_success_on_the_last_executed_attempt() -> None:
    j = job("j1", "SUCCEEDED", [(1, "e1", "EXECUTOR_LOST"), (2, "e2", "SUCCEEDED")], stale_refused=2)
    result = _fencing(j, ledger=[ledger_line("j1", 1, "e1", 0), ledger_line("j1", 2, "e2", 50)])
    assert result["valid"]
    assert result["stale_results_refused"] == 2 and result["jobs_with_stale_refusals"] == 1


def test_fencing_catches_a_success_recorded_on_a_stale_attempt() -> None:
    j = job("j1", "SUCCEEDED", [(1, "e1", "SUCCEEDED"), (2, "e2", "EXECUTOR_LOST")])
    result = _fencing(j, ledger=[ledger_line("j1", 1, "e1", 0), ledger_line("j1", 2, "e2", 50)])
    assert not result["valid"] and result["success_not_last_attempt"] == 1
    assert result["examples"][0]["id"] == "j1"


def test_fencing_catches_a_success_no_execution_produced() -> None:
    j = job("j1", "SUCCEEDED", [(1, "e1", "FENCED"), (2, "e2", "SUCCEEDED")])
    result = _fencing(j, ledger=[ledger_line("j1", 1, "e1", 0)])
    assert not result["valid"] and result["success_without_execution"] == 1
    assert result["examples"][0]["attempt"] == 2


def test_fencing_catches_two_successes_and_a_success_on_a_failed_job() -> None:
    two = job("j1", "SUCCEEDED", [(1, "e1", "SUCCEEDED"), (2, "e2", "SUCCEEDED")])
    failed = job("j2", "FAILED", [(1, "e1", "SUCCEEDED")])
    lines = [ledger_line("j1", 1, "e1", 0), ledger_line("j1", 2, "e2", 5), ledger_line("j2", 1, "e1", 5)]
    result = _fencing(two, failed, ledger=lines)
    assert not result["valid"]
    assert result["several_successes"] == 1 and result["success_but_not_succeeded"] == 1


def test_fencing_catches_an_older_attempts_result_recorded_on_the_current_one() -> None:
    """The stale-attempt bug: e1's attempt 1 reports after attempt 2 went to e2, and its result is
    written on attempt 2. Every other rule holds; the output's "ran" line names attempt 1."""
    j = job("j1", "SUCCEEDED", [(1, "e1", "EXECUTOR_LOST"), (2, "e2", "SUCCEEDED")])
    j["attempts"][1]["outputTail"] = base64.b64encode(b"ran j1 1 e1\n").decode()
    lines = [ledger_line("j1", 1, "e1", 0), ledger_line("j1", 2, "e2", 50)]
    result = _fencing(j, ledger=lines)
    assert not result["valid"] and result["result_of_another_attempt"] == 1
    assert result["examples"][0]["output_says"] == "j1 1 e1"
    j["attempts"][1]["outputTail"] = base64.b64encode(b"some output\nran j1 2 e2\n").decode()
    assert _fencing(j, ledger=lines)["valid"]


def _log(commit: int, entries: list[tuple[int, int, str]], first: int = 1) -> dict:
    return {"commit_index": commit, "first_index": first,
            "entries": [[i, term, "ENTRY_TYPE_NORMAL", data] for i, term, data in entries]}


def test_log_prefix_accepts_agreeing_logs_of_different_lengths_and_compaction() -> None:
    common = [(1, 1, "YQ=="), (2, 1, "Yg=="), (3, 2, "Yw==")]
    logs = {
        "n1": _log(3, common),
        "n2": _log(2, [*common[:2], (3, 3, "ZGlmZg==")]),  # index 3 differs but n2 has not committed it
        "n3": _log(3, common[1:], first=2),  # compacted below 2
    }
    result = log_prefix.check(Run.from_parts(final_state=final_state(logs=logs)))
    assert result["valid"], result
    assert result["compared_indexes"] == 3


def test_log_prefix_catches_diverging_committed_entries() -> None:
    logs = {"n1": _log(3, [(1, 1, "YQ=="), (2, 1, "Yg=="), (3, 2, "Yw==")]),
            "n2": _log(3, [(1, 1, "YQ=="), (2, 1, "Yg=="), (3, 3, "Yw==")])}
    result = log_prefix.check(Run.from_parts(final_state=final_state(logs=logs)))
    assert not result["valid"]
    assert result["divergent"] == 1 and result["first_divergent_index"] == 3
    assert result["examples"][0]["nodes"]["n1"]["term"] == 2 and result["examples"][0]["nodes"]["n2"]["term"] == 3


def test_log_prefix_catches_a_term_going_down_within_one_log() -> None:
    logs = {"n1": _log(2, [(1, 2, "YQ=="), (2, 1, "Yg==")])}
    result = log_prefix.check(Run.from_parts(final_state=final_state(logs=logs)))
    assert not result["valid"] and result["term_decreases"] == 1

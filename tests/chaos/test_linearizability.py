"""linearizability: hand-written cases, a brute-force cross-check, and the time bound."""

from __future__ import annotations

import itertools
import math
import time

from checkers import linearizability
from checkers.lin_model import START, UNKNOWN, JobModel, JobOp
from checkers.lin_search import SearchOp, search
from checkers.rundata import Run
from checkers.states import JobView, job_view
from hypothesis import given, settings
from hypothesis import strategies as st

from .builders import HistoryBuilder, final_state, job

SUCCEEDED_2 = job("j1", "SUCCEEDED", [(1, "e1", "FAILED"), (2, "e2", "SUCCEEDED")])


def _check(h: HistoryBuilder, *jobs: dict, **bounds: float) -> dict:
    return linearizability.check(Run.from_parts(history=h.build(), final_state=final_state(*jobs)), **bounds)


def test_a_job_read_along_its_life_is_linearizable() -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5)
         .get(1, "j1", "QUEUED", 0, 10, 12).get(1, "j1", "RUNNING", 1, 20, 22).get(2, "j1", "QUEUED", 1, 21, 40)
         .get(1, "j1", "RUNNING", 2, 30, 32, stale=True).get(1, "j1", "SUCCEEDED", 2, 50, 52))
    result = _check(h, SUCCEEDED_2)
    assert result["valid"] and result["linearizable"] == 1 and result["unknown"] == 0, result


def test_a_stale_read_older_than_a_completed_read_is_not_linearizable() -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5)
         .get(1, "j1", "RUNNING", 2, 10, 20)
         .get(2, "j1", "QUEUED", 0, 30, 40, stale=True))
    result = _check(h, SUCCEEDED_2)
    assert not result["valid"] and result["non_linearizable"] == 1
    failure = result["failures"][0]
    assert failure["id"] == "j1" and failure["stuck_on"]["index"] == 4 and failure["stuck_on"]["stale"] is True
    assert "RUNNING attempt 2" in failure["reason"]


def test_not_found_after_the_submit_ok_is_not_linearizable() -> None:
    h = HistoryBuilder().submit(0, "k1", "j1", 0, 5).get(1, "j1", "NOT_FOUND", 0, 10, 20, stale=True)
    result = _check(h, SUCCEEDED_2)
    assert not result["valid"] and result["failures"][0]["stuck_on"]["state"] == "NOT_FOUND"


def test_not_found_during_the_submit_and_a_retried_info_submit_are_linearizable() -> None:
    h = (HistoryBuilder().submit(0, "k1", None, 0, 30, type_="info")  # may have created the job...
         .get(1, "j1", "QUEUED", 0, 40, 45)  # ...which this read sees before the retry was invoked
         .submit(0, "k1", "j1", 50, 60).get(2, "j1", "NOT_FOUND", 0, 1, 3))
    assert _check(h, SUCCEEDED_2)["valid"]


def test_a_read_of_an_attempt_the_job_never_had_is_not_linearizable() -> None:
    h = HistoryBuilder().submit(0, "k1", "j1", 0, 5).get(1, "j1", "RUNNING", 3, 10, 20)
    result = _check(h, SUCCEEDED_2)
    assert not result["valid"] and "never had" in result["failures"][0]["reason"]


def test_an_acknowledged_cancel_that_did_not_stick_is_not_linearizable() -> None:
    h = HistoryBuilder().submit(0, "k1", "j1", 0, 5).cancel(1, "j1", "CANCELLED", 10, 20, attempt=1)
    assert not _check(h, SUCCEEDED_2)["valid"]


def test_cancelled_is_only_seen_after_a_cancel_was_invoked() -> None:
    cancelled = job("j1", "CANCELLED", [(1, "e1", "CANCELLED")])
    early = (HistoryBuilder().submit(0, "k1", "j1", 0, 5).get(1, "j1", "CANCELLED", 1, 10, 20)
             .cancel(2, "j1", "CANCELLED", 30, 40, attempt=1))
    assert not _check(early, cancelled)["valid"]
    concurrent = (HistoryBuilder().submit(0, "k1", "j1", 0, 5).get(1, "j1", "CANCELLED", 1, 10, 35)
                  .cancel(2, "j1", "CANCELLED", 30, 40, attempt=1))
    assert _check(concurrent, cancelled)["valid"]
    unknown = (HistoryBuilder().submit(0, "k1", "j1", 0, 5).cancel(2, "j1", None, 8, 9, type_="info")
               .get(1, "j1", "CANCELLED", 1, 10, 20))
    assert _check(unknown, cancelled)["valid"]


def test_a_cancel_of_a_finished_job_reads_its_state() -> None:
    h = HistoryBuilder().submit(0, "k1", "j1", 0, 5).cancel(1, "j1", "SUCCEEDED", 10, 20, attempt=2)
    assert _check(h, SUCCEEDED_2)["valid"]


def _hard_history(reads: int) -> HistoryBuilder:
    """Many concurrent reads of distinct values, then one that contradicts all of them: the search
    must visit every subset before it can say no."""
    h = HistoryBuilder().submit(0, "k1", "j1", 0, 5)
    for i in range(reads):
        h.get(i + 1, "j1", "QUEUED", i + 1, 10, 100)
    return h.get(reads + 1, "j1", "QUEUED", 0, 200, 210)


def test_the_search_gives_up_at_its_time_bound_and_stays_valid() -> None:
    started = time.monotonic()
    result = _check(_hard_history(24), per_job_seconds=0.2)
    assert time.monotonic() - started < 5
    assert result["valid"] and result["unknown"] == 1 and result["unknown_jobs"] == ["j1"]
    assert result["note"].startswith("gave up on 1 jobs")


def test_the_global_bound_leaves_the_remaining_jobs_unknown() -> None:
    h = HistoryBuilder().submit(0, "k1", "j1", 0, 5).submit(1, "k2", "j2", 0, 5)
    result = _check(h, SUCCEEDED_2, job("j2", "QUEUED"), total_seconds=0.0)
    assert result["valid"] and result["unknown"] == 2


def test_a_small_hard_history_is_decided_within_the_bound() -> None:
    result = _check(_hard_history(8))
    assert not result["valid"] and result["unknown"] == 0


# --- the search against brute force ------------------------------------------------------------

OBSERVED = [("NOT_FOUND", 0), ("QUEUED", 0), ("ASSIGNED", 1), ("RUNNING", 1), ("QUEUED", 1), ("ASSIGNED", 2),
            ("SUCCEEDED", 2), ("FAILED", 2), ("CANCELLED", 1), ("CANCELLED", 2)]
CANCEL_RESULTS = [(UNKNOWN, 0), ("CANCELLED", 1), ("CANCELLED", 2), ("SUCCEEDED", 2)]
FINALS: list[JobView | None] = [
    None,
    job_view("j1", SUCCEEDED_2),
    job_view("j1", job("j1", "CANCELLED", [(1, "e1", "CANCELLED")])),
    job_view("j1", job("j1", "RUNNING", [(1, "e1", "UNSPECIFIED")])),
]


@st.composite
def job_ops(draw: st.DrawFn) -> list[SearchOp]:
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["create", "read", "read", "cancel"]))
        call = draw(st.integers(0, 20))
        ret = call + draw(st.integers(0, 12))
        optional = kind != "read" and draw(st.booleans())
        if kind == "create":
            payload = JobOp("create", UNKNOWN, 0)
        elif kind == "read":
            payload = JobOp("read", *draw(st.sampled_from(OBSERVED)))
        else:
            state, attempt = (UNKNOWN, 0) if optional else draw(st.sampled_from(CANCEL_RESULTS[1:]))
            payload = JobOp("cancel", state, attempt)
        ops.append(SearchOp(call, math.inf if optional else ret, optional, payload))
    return ops


def brute_force(ops: list[SearchOp], model: JobModel) -> bool:
    """Every order of every admissible subset: all required ops, any optional ones."""
    required = [i for i, op in enumerate(ops) if not op.optional]
    optional = [i for i, op in enumerate(ops) if op.optional]
    for n in range(len(optional) + 1):
        for extra in itertools.combinations(optional, n):
            for order in itertools.permutations(required + list(extra)):
                if _respects_real_time(order, ops) and _legal(order, ops, model):
                    return True
    return False


def _respects_real_time(order: tuple[int, ...], ops: list[SearchOp]) -> bool:
    return all(not ops[b].ret < ops[a].call for a, b in itertools.combinations(order, 2))


def _legal(order: tuple[int, ...], ops: list[SearchOp], model: JobModel) -> bool:
    state = START
    for i in order:
        state = model.step(state, ops[i].payload)
        if state is None:
            return False
    return True


@settings(max_examples=400, deadline=None)
@given(ops=job_ops(), final=st.sampled_from(FINALS))
def test_the_search_agrees_with_brute_force(ops: list[SearchOp], final: JobView | None) -> None:
    model = JobModel(final, cancel_gated=any(op.payload.kind == "cancel" for op in ops))
    assert search(ops, model, START).linearizable == brute_force(ops, model)

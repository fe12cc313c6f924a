"""Assign, start, finish: fencing by attempt number, retries with backoff, timeouts."""

from __future__ import annotations

import pytest
from sm_harness import Node

from raftsched.state import commands as c
from raftsched.state.lifecycle import backoff_ms
from raftsched.v1 import jobs_pb2

J = jobs_pb2


def test_assign_start_succeed(node: Node) -> None:
    node.up()
    a = node.submit(timeout_ms=5000)
    assert not node.assign(a.id).error
    job = node.job(a.id)
    assert job.state == J.JOB_STATE_ASSIGNED
    assert (job.attempts[0].number, job.attempts[0].executor, job.attempts[0].assigned_ms) == (1, "e1", node.now)
    assert [(r.job_id, r.attempt) for r in node.state.attempts_on("e1")] == [(a.id, 1)]
    assert node.state.check_fence(a.id, 1).current
    node.tick(100)
    assert not node.start(a.id, 1).error
    assert node.job(a.id).state == J.JOB_STATE_RUNNING
    assert node.state.timed_out(node.now + 4999) == []  # the deadline counts from the start
    assert [r.job_id for r in node.state.timed_out(node.now + 5000)] == [a.id]
    node.finish(a.id, 1, J.ATTEMPT_END_SUCCEEDED, exit_code=0, output_tail=b"x" * 5000)
    job = node.job(a.id)
    assert job.state == J.JOB_STATE_SUCCEEDED
    assert job.attempts[0].end == J.ATTEMPT_END_SUCCEEDED and len(job.attempts[0].output_tail) == 4096
    assert node.state.attempts_on("e1") == [] and node.state.timed_out(2**64) == []
    fence = node.state.check_fence(a.id, 1)
    assert (fence.current, fence.current_attempt, fence.state) == (False, 1, J.JOB_STATE_SUCCEEDED)


@pytest.mark.parametrize(
    ("attempt", "executor", "why"),
    [(2, "e1", "only grow by one"), (1, "e9", "unknown executor"), (0, "e1", "only grow by one")],
)
def test_assign_refuses_wrong_attempt_or_executor(node: Node, attempt: int, executor: str, why: str) -> None:
    node.up()
    a = node.submit()
    result = node.assign(a.id, executor, attempt)
    assert result.code == 9 and why in result.error
    assert node.job(a.id) == a  # nothing changed
    assert node.state.counters()["refused_items"] == 1


def test_assign_refuses_non_queued_draining_and_full(node: Node) -> None:
    node.up(slots=2)
    a, b, d = node.submit(slots=2), node.submit(), node.submit()
    node.assign(a.id)
    assert "ASSIGNED" in node.assign(a.id, attempt=2).error
    assert "free slots" in node.assign(b.id).error
    node.up("e2", slots=4)
    node.run(c.drain("e2"))
    assert "DRAINING" in node.assign(d.id, "e2").error
    batch = node.run(c.assign([(b.id, 1, "e2"), (d.id, 1, "e1"), ("j77", 1, "e1")]))
    assert batch.error.startswith("refused 3 item(s)")


def test_started_only_for_current_attempt_on_its_executor(node: Node) -> None:
    node.up()
    node.up("e2")
    a = node.submit()
    node.assign(a.id)
    assert "not the current attempt" in node.start(a.id, 2).error
    assert "belongs to e1" in node.start(a.id, 1, "e2").error
    assert node.job(a.id).state == J.JOB_STATE_ASSIGNED
    assert not node.start(a.id, 1).error
    assert "RUNNING" in node.start(a.id, 1).error  # a duplicate start changes nothing


def test_a_result_carrying_its_start_records_both_in_one_entry(node: Node) -> None:
    """The start applies first, as a started command would, then the result; a start that
    would be refused alone is refused here too and the results still apply."""
    node.up()
    node.up("e2")
    a, b, d = node.submit(), node.submit(), node.submit()
    for job_id in (a.id, b.id):
        node.assign(job_id)
    node.assign(d.id, "e2")
    node.tick(7)
    result = node.run(c.finished("e1", [c.finished_item(a.id, 1, J.ATTEMPT_END_SUCCEEDED),
                                        c.finished_item(d.id, 1, J.ATTEMPT_END_FAILED)],
                                 started=[(a.id, 1), (b.id, 1), (d.id, 1)]))
    job = node.job(a.id)
    assert job.state == J.JOB_STATE_SUCCEEDED
    assert (job.attempts[0].started_ms, job.attempts[0].finished_ms) == (node.now, node.now)
    assert node.job(b.id).state == J.JOB_STATE_RUNNING  # started only: its result comes later
    assert node.job(d.id).state == J.JOB_STATE_ASSIGNED  # e2's attempt: neither the start nor the result
    assert node.job(d.id).stale_results_refused == 1
    assert result.code == 9 and result.error.startswith("refused 2 item(s)")
    assert "belongs to e2" in result.error and "stale result" in result.error


def test_stale_result_is_refused_counted_and_changes_nothing_else(node: Node) -> None:
    node.up()
    a = node.submit(backoff=J.RetryBackoff(initial_ms=10))
    node.assign(a.id)
    node.finish(a.id, 1, J.ATTEMPT_END_FAILED, error="first")
    node.tick(10)
    node.assign(a.id)
    node.start(a.id, 2)
    before = node.job(a.id)
    result = node.finish(a.id, 1, J.ATTEMPT_END_SUCCEEDED)  # attempt 1 is long over
    assert result.code == 9 and "stale" in result.error
    after = node.job(a.id)
    assert after.stale_results_refused == 1
    after.stale_results_refused = 0
    assert after == before  # the stale result changed nothing but its counter
    assert node.state.counters()["stale_results_refused"] == 1
    assert not node.state.check_fence(a.id, 1).current and node.state.check_fence(a.id, 2).current
    # A result from the wrong executor is stale too, and so is a second result for one attempt.
    assert "stale" in node.finish(a.id, 2, J.ATTEMPT_END_SUCCEEDED, executor="e2").error
    node.finish(a.id, 2, J.ATTEMPT_END_SUCCEEDED)
    assert "stale" in node.finish(a.id, 2, J.ATTEMPT_END_FAILED).error
    assert node.job(a.id).state == J.JOB_STATE_SUCCEEDED
    assert node.job(a.id).stale_results_refused == 3


def test_retry_backoff_then_failed_after_max_attempts(node: Node) -> None:
    node.up()
    spec_backoff = J.RetryBackoff(initial_ms=100, max_ms=250, multiplier=2.0)
    a = node.submit(max_attempts=3, backoff=spec_backoff)
    for n, delay in ((1, 100), (2, 200)):
        node.assign(a.id)
        node.finish(a.id, n, J.ATTEMPT_END_FAILED, error="boom")
        job = node.job(a.id)
        assert job.state == J.JOB_STATE_QUEUED
        assert job.not_before_ms == node.now + delay
        assert node.state.queued(node.now + delay - 1, 10) == []
        assert "in retry backoff" in node.assign(a.id).error
        node.tick(delay)
        assert [j.id for j in node.state.queued(node.now, 10)] == [a.id]
    node.assign(a.id)
    node.finish(a.id, 3, J.ATTEMPT_END_FENCED)
    job = node.job(a.id)
    assert job.state == J.JOB_STATE_FAILED
    assert "no attempts left (max 3)" in job.state_reason
    assert [att.end for att in job.attempts] == [J.ATTEMPT_END_FAILED] * 2 + [J.ATTEMPT_END_FENCED]


def test_backoff_formula_defaults_and_cap() -> None:
    default = J.RetryBackoff()
    assert [backoff_ms(default, n) for n in (1, 2, 3, 5, 6, 50)] == [1000, 2000, 4000, 16000, 30000, 30000]
    assert backoff_ms(J.RetryBackoff(initial_ms=10, multiplier=1e300), 500) == 30000
    assert backoff_ms(J.RetryBackoff(multiplier=float("nan")), 2) == 2000


def test_timed_out_attempt_is_retried_and_early_timeout_refused(node: Node) -> None:
    node.up()
    a = node.submit(timeout_ms=1000, max_attempts=2)
    node.assign(a.id)
    result = node.run(c.timed_out([(a.id, 1)]), at=node.now + 999)
    assert "deadline has not passed" in result.error
    node.tick(1000)
    assert [r.attempt for r in node.state.timed_out(node.now)] == [1]
    assert not node.run(c.timed_out([(a.id, 1)])).error
    job = node.job(a.id)
    assert job.state == J.JOB_STATE_QUEUED
    assert job.attempts[0].end == J.ATTEMPT_END_TIMED_OUT and "timed out" in job.attempts[0].error
    assert node.state.timed_out(2**64) == []
    assert "not the current attempt" in node.run(c.timed_out([(a.id, 1)])).error


def test_terminal_state_never_changes(node: Node) -> None:
    node.up()
    a = node.submit()
    node.assign(a.id)
    node.finish(a.id, 1, J.ATTEMPT_END_SUCCEEDED)
    done = node.job(a.id)
    node.run(c.cancel(a.id))
    node.assign(a.id)
    node.start(a.id, 1)
    node.run(c.timed_out([(a.id, 1)]))
    node.run(c.executor_down("e1"))
    after = node.job(a.id)
    after.stale_results_refused = done.stale_results_refused
    assert after == done

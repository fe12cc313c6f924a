"""The leader's screening of executor reports (raftsched.scheduler.screening), against a real state
machine: which attempts an executor holds (CURRENT), held and lost (LOST: late news is legitimate
and recorded as stale), or never held (NEVER: refused before the log); the refusal counter and its
rate-limited log; the protocol's per-message limits."""

from __future__ import annotations

import logging

import pytest
from sm_harness import Node

from raftsched.scheduler.screening import (
    MAX_REPORT_ITEMS,
    MAX_RUNNING_REFS,
    Holding,
    Kind,
    Reason,
    Refusal,
    Refusals,
    check_message,
    check_register,
    describe,
    holding,
)
from raftsched.state import commands as c
from raftsched.state.validate import ValidationError
from raftsched.v1 import executor_pb2 as E
from raftsched.v1 import jobs_pb2

J = jobs_pb2


def _holding(node: Node, job_id: str, attempt: int, executor: str) -> Holding:
    return holding(node.state.get_job(job_id), attempt, executor)


def test_current_attempt_is_held_by_its_executor_only(node: Node) -> None:
    node.up("e1")
    node.up("e2")
    job = node.submit()
    node.assign(job.id, "e1")
    assert _holding(node, job.id, 1, "e1") is Holding.CURRENT
    assert _holding(node, job.id, 1, "e2") is Holding.NEVER  # another executor's attempt
    assert _holding(node, job.id, 2, "e1") is Holding.NEVER  # no such attempt yet
    assert _holding(node, job.id, 0, "e1") is Holding.NEVER
    node.start(job.id, 1, "e1")
    assert _holding(node, job.id, 1, "e1") is Holding.CURRENT


@pytest.mark.parametrize("how", ["executor-down", "fenced", "cancelled", "timed-out", "finished"])
def test_an_attempt_that_ended_is_lost_to_its_executor_not_never_held(node: Node, how: str) -> None:
    node.up("e1")
    node.up("e2")
    job = node.submit(timeout_ms=1000)
    node.assign(job.id, "e1")
    node.start(job.id, 1, "e1")
    if how == "executor-down":
        node.run(c.executor_down("e1", "silent"))
    elif how == "fenced":
        node.finish(job.id, 1, J.ATTEMPT_END_FENCED)
    elif how == "cancelled":
        node.run(c.cancel(job.id))
    elif how == "timed-out":
        node.tick(2000)
        assert not node.run(c.timed_out([(job.id, 1)])).error
    else:
        node.finish(job.id, 1, J.ATTEMPT_END_SUCCEEDED)
    assert _holding(node, job.id, 1, "e1") is Holding.LOST
    assert _holding(node, job.id, 1, "e2") is Holding.NEVER
    if how in ("executor-down", "fenced", "timed-out"):  # retried: the next attempt goes to e2
        node.tick(60_000)  # past the retry backoff
        assert not node.assign(job.id, "e2", attempt=2).error
        assert _holding(node, job.id, 2, "e2") is Holding.CURRENT
        assert _holding(node, job.id, 1, "e1") is Holding.LOST
        assert _holding(node, job.id, 2, "e1") is Holding.NEVER


def test_a_lost_attempts_late_result_is_recorded_as_stale_at_apply(node: Node) -> None:
    """What screening lets through as LOST is what SPEC §6.4 records: the stale counter moves."""
    node.up("e1")
    job = node.submit()
    node.assign(job.id, "e1")
    node.run(c.executor_down("e1"))
    assert _holding(node, job.id, 1, "e1") is Holding.LOST
    assert "stale" in node.finish(job.id, 1, J.ATTEMPT_END_SUCCEEDED).error
    assert node.job(job.id).stale_results_refused == 1


def test_unknown_jobs_are_never_held(node: Node) -> None:
    assert holding(None, 1, "e1") is Holding.NEVER
    assert node.state.get_job("j424242") is None
    assert node.state.get_job("not-a-job" * 1000) is None
    assert "no such job" in describe("x" * 10_000, 1, None)
    assert len(describe("x" * 10_000, 1, None)) < 200


def test_describe_says_whose_attempt_it_is(node: Node) -> None:
    node.up("e1")
    job = node.submit()
    node.assign(job.id, "e1")
    stored = node.state.get_job(job.id)
    assert describe(job.id, 1, stored) == f"{job.id}/1: given to e1"
    assert "no such attempt" in describe(job.id, 5, stored)


def test_refusals_are_counted_each_and_logged_once_per_kind_and_reason_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    refusals = Refusals(interval=10.0, clock=lambda: now[0])
    forged = Refusal(Kind.FINISHED, Reason.NOT_HELD, "e9", "j1/1: given to e1")
    with caplog.at_level(logging.WARNING, logger="raftsched.scheduler"):
        assert refusals.add(forged)
        assert not refusals.add(forged)
        assert not refusals.add(forged)
        assert refusals.add(Refusal(Kind.RUNNING, Reason.NOT_HELD, "e9", "j1/1: given to e1"))  # another kind
        now[0] += 10.0
        assert refusals.add(forged)
    assert refusals.counts == {(Kind.FINISHED, Reason.NOT_HELD): 4, (Kind.RUNNING, Reason.NOT_HELD): 1}
    assert refusals.total() == 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "2 more refused" in lines[-1] and "finished: not-held" in lines[-1]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_refusal_log_line_echoes_at_most_100_characters_of_the_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="raftsched.scheduler"):
        Refusals(clock=lambda: 0.0).add(Refusal(Kind.REGISTER, Reason.INVALID, "E" * 100_000, "executor_id: too long"))
    assert len(caplog.records[0].getMessage()) < 300


def _register(**fields: object) -> E.Register:
    base: dict[str, object] = {"executor_id": "e1", "slots": 2, "handlers": ["noop"]}
    return E.Register(**{**base, **fields})  # type: ignore[arg-type]


def test_register_limits_cover_its_lists() -> None:
    check_register(_register(running=[J.AttemptRef(job_id="j1", attempt=1)] * MAX_RUNNING_REFS))
    with pytest.raises(ValidationError, match=r"^running: "):
        check_register(_register(running=[J.AttemptRef(job_id="j1", attempt=1)] * (MAX_RUNNING_REFS + 1)))
    with pytest.raises(ValidationError, match=r"^unacked: "):
        check_register(_register(unacked=[E.TaskFinished(job_id="j1", attempt=1)] * (MAX_REPORT_ITEMS + 1)))
    with pytest.raises(ValidationError, match=r"^slots: "):
        check_register(_register(slots=2**32 - 1))


def test_message_limits() -> None:
    check_message(E.ExecutorMessage(heartbeat=E.Heartbeat(seq=1, running=[J.AttemptRef(job_id="j1", attempt=1)])))
    with pytest.raises(ValidationError, match=r"^heartbeat\.running: "):
        check_message(E.ExecutorMessage(heartbeat=E.Heartbeat(
            running=[J.AttemptRef(job_id="j1", attempt=1)] * (MAX_RUNNING_REFS + 1))))
    with pytest.raises(ValidationError, match=r"^started: "):
        check_message(E.ExecutorMessage(started=[E.TaskStarted(job_id="j1", attempt=1)] * MAX_REPORT_ITEMS,
                                        finished=[E.TaskFinished(job_id="j1", attempt=1)]))

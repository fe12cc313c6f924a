"""Containment in the state machine (promise 14): the result facts per executor, quarantine and
release, a quarantine that outlives a restart, and poison jobs."""

from __future__ import annotations

from sm_harness import Node

from raftsched.state import commands as c
from raftsched.state import notify
from raftsched.v1 import commands_pb2, jobs_pb2, notify_pb2

J = jobs_pb2


def run_one(node: Node, end: int, executor: str = "e1", **spec: object) -> jobs_pb2.Job:
    job = node.submit(**spec)
    attempt = len(node.job(job.id).attempts) + 1
    assert not node.assign(job.id, executor, attempt=attempt).error
    assert not node.finish(job.id, attempt, end, executor).error
    return node.job(job.id)


def executor(node: Node, executor_id: str) -> jobs_pb2.ExecutorInfo:
    info = node.state.executor(executor_id)
    assert info is not None
    return info


def test_failures_in_a_row_are_counted_and_a_success_resets_them(node: Node) -> None:
    node.up("e1")
    node.tick(10)
    first = node.now
    for _ in range(3):
        run_one(node, J.ATTEMPT_END_FAILED)
        node.tick(10)
    info = executor(node, "e1")
    assert (info.consecutive_failures, info.failing_since_ms) == (3, first)
    run_one(node, J.ATTEMPT_END_CANCELLED)  # says nothing about the executor
    assert executor(node, "e1").consecutive_failures == 3
    run_one(node, J.ATTEMPT_END_SUCCEEDED)
    info = executor(node, "e1")
    assert (info.consecutive_failures, info.failing_since_ms, info.last_success_ms) == (0, 0, node.now)


def test_a_timeout_counts_as_a_failure(node: Node) -> None:
    node.up("e1")
    job = node.submit(timeout_ms=100)
    node.assign(job.id)
    node.start(job.id, 1)
    node.tick(200)
    assert not node.run(c.timed_out([(job.id, 1)])).error
    assert executor(node, "e1").consecutive_failures == 1


def test_a_timeout_of_a_run_that_never_started_is_not_held_against_the_executor(node: Node) -> None:
    """An assignment that never started within its deadline says more about its delivery (a
    cut link, leaders changing) than about the executor: make chaos quarantined two healthy
    executors of three after a leader change timed out assignments that had not reached them."""
    node.up("e1")
    job = node.submit(timeout_ms=100)
    node.assign(job.id)
    node.tick(200)
    assert not node.run(c.timed_out([(job.id, 1)])).error
    assert node.job(job.id).attempts[0].end == J.ATTEMPT_END_TIMED_OUT  # still timed out and retried
    assert executor(node, "e1").consecutive_failures == 0


def test_quarantine_takes_no_work_emits_an_event_and_release_ends_it(node: Node) -> None:
    node.up("e1")
    sink = notify_pb2.NotifySink(name="hook", url="http://127.0.0.1:9/x", events=[notify.EXECUTOR_QUARANTINED])
    assert not node.run(commands_pb2.Command(notify_add=commands_pb2.NotifyAddCmd(sink=sink))).error
    assert not node.run(c.quarantine("e1", node.now + 60_000, "5 in a row")).error
    info = executor(node, "e1")
    assert (info.state, info.quarantined_until_ms, info.quarantines, info.state_reason) == (
        J.EXECUTOR_STATE_QUARANTINED, node.now + 60_000, 1, "5 in a row")
    job = node.submit()
    assert "QUARANTINED" in node.assign(job.id).error
    pending = node.state.pending_events("hook", skip=lambda _id: False, limit=10, scan=10)
    assert [e.type for e in pending] == [notify.EXECUTOR_QUARANTINED]
    assert "5 in a row" in str(pending[0])
    # Quarantining it again while it is quarantined is refused and changes nothing.
    assert "QUARANTINED" in node.run(c.quarantine("e1", node.now + 1, "again")).error
    assert executor(node, "e1").quarantines == 1
    assert not node.run(c.release("e1", "released by an operator")).error
    info = executor(node, "e1")
    assert (info.state, info.quarantined_until_ms, info.quarantines) == (J.EXECUTOR_STATE_CONNECTED, 0, 1)
    assert not node.assign(job.id).error
    assert "not quarantined" in node.run(c.release("e1", "again")).error
    assert "not found" in node.run(c.release("nope", "x")).error


def test_a_quarantine_needs_a_connected_executor_and_a_future_end(node: Node) -> None:
    node.up("e1")
    assert "not after" in node.run(c.quarantine("e1", node.now, "x")).error
    node.run(c.executor_down("e1", "gone"))
    assert "DOWN" in node.run(c.quarantine("e1", node.now + 1000, "x")).error
    assert "not found" in node.run(c.quarantine("e9", node.now + 1000, "x")).error


def test_a_quarantine_holds_across_down_restart_and_reregistration(node: Node) -> None:
    node.up("e1")
    node.run(c.quarantine("e1", node.now + 60_000, "bad disk"))
    node.run(c.executor_down("e1", "restarting"))
    node.reopen()
    node.up("e1")  # comes back within its cool-off: still quarantined, same end
    info = executor(node, "e1")
    assert (info.state, info.quarantined_until_ms, info.state_reason) == (
        J.EXECUTOR_STATE_QUARANTINED, node.now + 60_000, "bad disk")
    node.tick(60_001)
    node.up("e1")  # after it: connected (the leader releases it formally as well)
    assert executor(node, "e1").state == J.EXECUTOR_STATE_CONNECTED


def test_a_job_lost_with_two_executors_fails_as_poison(node: Node) -> None:
    node.up("e1")
    node.up("e2")
    node.up("e3")
    job = node.submit(max_attempts=5)
    node.assign(job.id, "e1", attempt=1)
    node.run(c.executor_down("e1", "killed", poison_after=2))
    assert node.job(job.id).state == J.JOB_STATE_QUEUED  # one loss: retried
    node.assign(job.id, "e2", attempt=2)
    node.run(c.executor_down("e2", "killed", poison_after=2))
    failed = node.job(job.id)
    assert failed.state == J.JOB_STATE_FAILED
    assert failed.state_reason == "poison: executors lost while running it (e1, e2)"
    assert "FAILED" in node.assign(job.id, "e3", attempt=3).error  # never tried on a third


def test_an_old_entry_without_a_poison_limit_retries_as_before(node: Node) -> None:
    node.up("e1")
    node.up("e2")
    job = node.submit(max_attempts=5)
    node.assign(job.id, "e1", attempt=1)
    node.run(c.executor_down("e1", "killed"))
    node.assign(job.id, "e2", attempt=2)
    node.run(c.executor_down("e2", "killed"))
    assert node.job(job.id).state == J.JOB_STATE_QUEUED

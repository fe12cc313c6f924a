"""Executors: register, drain, down (attempts lost and re-queued with the next attempt number)."""

from __future__ import annotations

from sm_harness import Node

from raftsched.state import commands as c
from raftsched.v1 import jobs_pb2

J = jobs_pb2


def test_executor_up_registers_and_refreshes(node: Node) -> None:
    node.up("e1", slots=2, labels={"zone": "a"}, handlers=["resize", "noop", "resize"])
    info = node.state.executor("e1")
    assert info is not None
    assert (info.state, info.slots, dict(info.labels), list(info.handlers)) == (
        J.EXECUTOR_STATE_CONNECTED, 2, {"zone": "a"}, ["noop", "resize"])
    assert info.registered_ms == node.now
    assert "resize" in node.state.known_handlers() and "sleep" in node.state.known_handlers()
    node.tick(5)
    node.up("e1", slots=8)
    info = node.state.executor("e1")
    assert info is not None and info.slots == 8 and dict(info.labels) == {}
    assert "empty" in node.run(c.executor_up("", slots=1)).error


def test_known_handlers_follow_every_registration_and_a_restart(node: Node) -> None:
    """The handler names are kept between submits; a registration with other handlers, and a
    reload from RocksDB, must show in the very next answer."""
    assert node.state.known_handlers() == {"noop", "sleep", "echo", "fail"}
    node.up("e1", handlers=["resize"])
    assert "resize" in node.state.known_handlers()
    node.up("e2", handlers=["thumbnail"])
    assert {"resize", "thumbnail"} <= node.state.known_handlers()
    node.up("e1", handlers=["crop"])  # e1 re-registers without resize; e2 keeps thumbnail
    assert "crop" in node.state.known_handlers() and "resize" not in node.state.known_handlers()
    node.reopen()
    assert {"crop", "thumbnail"} <= node.state.known_handlers()
    assert "resize" not in node.state.known_handlers()


def test_executor_up_keeps_running_attempts(node: Node) -> None:
    node.up()
    a = node.submit(slots=3)
    node.assign(a.id)
    node.up()  # the executor re-registers with a new leader: its task keeps running
    assert node.state.check_fence(a.id, 1).current
    assert node.state.slots_in_use("e1") == 3
    assert [r.job_id for r in node.state.attempts_on("e1")] == [a.id]


def test_executor_down_requeues_at_once_and_next_assign_uses_a_new_attempt(node: Node) -> None:
    node.up("e1")
    node.up("e2")
    a, b = node.submit(), node.submit()
    node.assign(a.id)
    node.assign(b.id)
    node.start(a.id, 1)
    node.run(c.executor_down("e1", "lease lapsed"))
    for job_id in (a.id, b.id):
        job = node.job(job_id)
        assert job.state == J.JOB_STATE_QUEUED and job.not_before_ms == node.now  # no backoff
        assert job.attempts[-1].end == J.ATTEMPT_END_EXECUTOR_LOST
        assert "lease lapsed" in job.attempts[-1].error
    info = node.state.executor("e1")
    assert info is not None and info.state == J.EXECUTOR_STATE_DOWN
    assert node.state.attempts_on("e1") == []
    assert "DOWN" in node.assign(a.id, "e1").error
    assert "only grow by one" in node.assign(a.id, "e2", attempt=1).error
    assert not node.assign(a.id, "e2", attempt=2).error
    assert node.state.check_fence(a.id, 2).current and not node.state.check_fence(a.id, 1).current
    # The lost executor's late result is stale.
    assert "stale" in node.finish(a.id, 1, J.ATTEMPT_END_SUCCEEDED).error
    node.up("e1")  # back from DOWN: connected again
    info = node.state.executor("e1")
    assert info is not None and info.state == J.EXECUTOR_STATE_CONNECTED


def test_executor_loss_counts_against_max_attempts(node: Node) -> None:
    node.up()
    a = node.submit(max_attempts=1)
    node.assign(a.id)
    node.run(c.executor_down("e1"))
    job = node.job(a.id)
    assert job.state == J.JOB_STATE_FAILED and "EXECUTOR_LOST" in job.state_reason


def test_drain_keeps_running_work_and_survives_reregistration(node: Node) -> None:
    node.up()
    a, b = node.submit(), node.submit()
    node.assign(a.id)
    node.run(c.drain("e1"))
    assert node.state.check_fence(a.id, 1).current
    node.up()
    info = node.state.executor("e1")
    assert info is not None and info.state == J.EXECUTOR_STATE_DRAINING
    assert "DRAINING" in node.assign(b.id).error
    assert node.run(c.drain("e9")).code == 5
    node.run(c.executor_down("e1"))
    assert node.run(c.drain("e1")).code == 9
    assert node.run(c.executor_down("e9")).code == 5


def test_a_schedule_without_cron_or_interval_is_refused(node: Node) -> None:
    cmd = c.Command()
    cmd.create_schedule.spec.name = "nightly"  # neither cron nor every_ms (tests/schedules has the rest)
    result = node.run(cmd)
    assert result.code == 3 and result.error.startswith("cron:")
    assert node.state.counters()["refused_commands"] == 1

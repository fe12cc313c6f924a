"""The leader's containment rules in the pure scheduling core (promise 14): the quarantine rule and
the end of a cool-off, retry anti-affinity, and the retry budget. Driven like tests/scheduler/
test_core.py: events in, proposals out, applied to the real state machine."""

from __future__ import annotations

import dataclasses

from raftsched.state import commands as cmds
from raftsched.v1 import jobs_pb2

from .test_core import CONFIG as CORE_CONFIG
from .test_core import Harness, submit

J = jobs_pb2
# Executors never time out here (these scenarios move time by minutes without heartbeats).
CONFIG = dataclasses.replace(CORE_CONFIG, executor_timeout_ms=10**9)


def ran(h: Harness, executor: str, end: int, attempt: int = 1, job: str = "") -> str:
    """A job's attempt ran on `executor` and ended `end` (applied straight to the state machine)."""
    job = job or submit(h, max_attempts=5)
    assert not h.apply(cmds.assign([(job, attempt, executor)])).error
    assert not h.apply(cmds.finished(executor, [cmds.finished_item(job, attempt, end)])).error
    return job


def state_of(h: Harness, executor: str) -> int:
    info = h.sm.executor(executor)
    assert info is not None
    return info.state


def two_executors(h: Harness) -> None:
    h.register("e1")
    h.register("e2")
    h.commit()


def test_five_failures_in_a_row_while_another_succeeds_quarantine_then_the_cooloff_releases() -> None:
    h = Harness(config=dataclasses.replace(CONFIG, quarantine_ms=10_000))
    two_executors(h)
    for _ in range(4):
        ran(h, "e1", J.ATTEMPT_END_FAILED)
    ran(h, "e2", J.ATTEMPT_END_SUCCEEDED)
    h.advance(100)
    assert "quarantine" not in h.proposed(), "4 failures are below the rule"
    ran(h, "e1", J.ATTEMPT_END_FAILED)
    h.advance(100)
    assert h.proposed().count("quarantine") == 1
    h.advance(100)
    assert h.proposed().count("quarantine") == 1, "proposed again while the first is in flight"
    h.commit()
    info = h.sm.executor("e1")
    assert info is not None and info.state == J.EXECUTOR_STATE_QUARANTINED
    assert "5 attempts in a row failed or timed out on it, while e2 succeeded" in info.state_reason
    assert info.quarantined_until_ms == h.now().wall - 100 + 10_000
    h.advance(9_000)
    assert "release" not in h.proposed()
    h.advance(1_100)
    assert "release" in h.proposed()
    h.commit()
    assert state_of(h, "e1") == J.EXECUTOR_STATE_CONNECTED


def test_a_repeat_quarantine_doubles_the_cooloff() -> None:
    h = Harness(config=dataclasses.replace(CONFIG, quarantine_ms=10_000, quarantine_max_ms=15_000))
    two_executors(h)
    for round_ in range(3):
        for _ in range(5):
            ran(h, "e1", J.ATTEMPT_END_FAILED)
        ran(h, "e2", J.ATTEMPT_END_SUCCEEDED)
        h.advance(100)
        h.commit()
        info = h.sm.executor("e1")
        assert info is not None and info.state == J.EXECUTOR_STATE_QUARANTINED
        assert info.quarantined_until_ms - h.now().wall == [10_000, 15_000, 15_000][round_]  # capped
        assert not h.apply(cmds.release("e1", "by hand")).error


def test_no_quarantine_when_no_other_executor_succeeds() -> None:
    """Every executor failing the same work means the work is broken, not the executors."""
    h = Harness(config=CONFIG)
    two_executors(h)
    ran(h, "e2", J.ATTEMPT_END_SUCCEEDED)
    h.advance(2_000)  # past the staleness allowed for last_success_ms
    for _ in range(6):
        ran(h, "e1", J.ATTEMPT_END_FAILED)  # began after e2's last success
        ran(h, "e2", J.ATTEMPT_END_FAILED)
    h.advance(100)
    assert "quarantine" not in h.proposed()


def test_the_rule_can_be_turned_off() -> None:
    h = Harness(config=dataclasses.replace(CONFIG, quarantine_after=0))
    two_executors(h)
    for _ in range(10):
        ran(h, "e1", J.ATTEMPT_END_FAILED)
    ran(h, "e2", J.ATTEMPT_END_SUCCEEDED)
    h.advance(100)
    assert "quarantine" not in h.proposed()


def test_a_retry_goes_to_another_executor_than_the_one_it_failed_on() -> None:
    h = Harness(config=CONFIG)
    two_executors(h)
    for _ in range(4):  # of each retry's two candidates, e1 would be first: more free slots
        job = ran(h, "e1", J.ATTEMPT_END_FAILED)
        h.held.clear()
        h.advance(60_000)  # past the backoff
        assigns = [p.command for p in h.held if p.command.WhichOneof("body") == "assign"]
        assert [(i.job_id, i.executor) for c in assigns for i in c.assign.items] == [(job, "e2")]
        h.commit()
        # It succeeds there, which frees e2's slot for the next round.
        h.apply(cmds.finished("e2", [cmds.finished_item(job, 2, J.ATTEMPT_END_SUCCEEDED)]))


def test_a_retry_may_go_back_when_no_other_executor_fits() -> None:
    h = Harness(config=CONFIG)
    h.register("e1")
    h.commit()
    job = ran(h, "e1", J.ATTEMPT_END_FAILED)
    h.advance(60_000)
    assigns = [p.command for p in h.held if p.command.WhichOneof("body") == "assign"]
    assert [(i.job_id, i.executor) for c in assigns for i in c.assign.items] == [(job, "e1")]


def test_retries_over_the_budget_wait_and_new_work_passes_them() -> None:
    h = Harness(config=dataclasses.replace(CONFIG, retry_rate=1, retry_burst=1))
    two_executors(h)  # 4 slots
    retries = [ran(h, "e1", J.ATTEMPT_END_FAILED) for _ in range(3)]
    fresh = submit(h)
    h.held.clear()
    h.advance(60_000)  # past every backoff; the bucket holds its burst of 1
    assigned = [i.job_id for p in h.held if p.command.WhichOneof("body") == "assign"
                for i in p.command.assign.items]
    assert assigned == [retries[0], fresh]
    assert h.core.budget_held == set(retries[1:])
    assert "retry budget" in h.core.budget_reason()
    h.commit()
    h.advance(500)  # half a token
    assert h.proposed().count("assign") == 0
    h.advance(600)
    assigned = [i.job_id for p in h.held if p.command.WhichOneof("body") == "assign"
                for i in p.command.assign.items]
    assert assigned == [retries[1]]


def test_a_lost_executor_is_declared_down_with_the_poison_limit() -> None:
    h = Harness(config=dataclasses.replace(CORE_CONFIG, poison_after=3))
    h.register("e1")
    h.commit()
    h.advance(5_200)
    downs = [p.command.executor_down for p in h.held if p.command.WhichOneof("body") == "executor_down"]
    assert [(d.executor_id, d.poison_after) for d in downs] == [("e1", 3)]

"""Lease bookkeeping on a fake clock: no sleeping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftsched.executor.lease import MAX_OUTSTANDING_HEARTBEATS, Lease


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(cap_ms: int = 3000) -> tuple[Lease, FakeClock]:
    clock = FakeClock()
    return Lease(cap_ms=cap_ms, clock=clock), clock


def test_not_held_until_an_ack() -> None:
    lease, clock = make()
    assert not lease.held() and lease.remaining() == 0.0 and lease.deadline is None
    lease.heartbeat_sent(1)
    clock.advance(1.0)
    assert not lease.held()


def test_measured_from_when_the_heartbeat_was_sent() -> None:
    lease, clock = make()
    lease.heartbeat_sent(1)
    clock.advance(0.5)  # the ack arrives 500 ms later: that time is already spent
    assert lease.maybe_extend(1, 3000)
    assert lease.remaining() == pytest.approx(2.5)
    clock.advance(2.4)
    assert lease.held()
    clock.advance(0.2)
    assert not lease.held() and lease.remaining() == 0.0


def test_the_shorter_of_grant_and_cap_wins() -> None:
    lease, _ = make(cap_ms=1000)
    lease.heartbeat_sent(1)
    lease.maybe_extend(1, 5000)
    assert lease.remaining() == pytest.approx(1.0)
    lease.heartbeat_sent(2)
    lease.maybe_extend(2, 400)
    assert lease.remaining() == pytest.approx(1.0)  # never shortened by a later, smaller grant


def test_unknown_stale_and_repeated_acks_change_nothing() -> None:
    lease, clock = make()
    assert not lease.maybe_extend(7, 3000)
    lease.heartbeat_sent(1)
    clock.advance(0.1)
    lease.heartbeat_sent(2)
    assert lease.maybe_extend(2, 3000)
    assert not lease.maybe_extend(1, 3000)  # superseded by the ack of 2
    assert not lease.maybe_extend(2, 3000)  # already applied


def test_old_heartbeats_are_forgotten() -> None:
    lease, _ = make()
    for seq in range(1, MAX_OUTSTANDING_HEARTBEATS + 11):
        lease.heartbeat_sent(seq)
    assert not lease.maybe_extend(1, 3000)
    assert lease.maybe_extend(MAX_OUTSTANDING_HEARTBEATS + 10, 3000)


def test_seq_must_increase() -> None:
    lease, _ = make()
    lease.heartbeat_sent(5)
    with pytest.raises(AssertionError):
        lease.heartbeat_sent(5)


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Lease(cap_ms=0, clock=FakeClock())


@given(st.lists(st.tuples(st.floats(0, 2), st.booleans(), st.integers(0, 5000)), max_size=60))
def test_deadline_never_moves_back_nor_beyond_send_plus_cap(steps: list[tuple[float, bool, int]]) -> None:
    lease, clock = make(cap_ms=3000)
    sent: dict[int, float] = {}
    previous = None
    for seq, (delay, ack, grant) in enumerate(steps, start=1):
        clock.advance(delay)
        lease.heartbeat_sent(seq)
        sent[seq] = clock.now
        if ack:
            lease.maybe_extend(seq, grant)
        deadline = lease.deadline
        if previous is not None:
            assert deadline is not None and deadline >= previous
        if deadline is not None:
            assert deadline <= max(sent.values()) + 3.0 + 1e-9
        previous = deadline

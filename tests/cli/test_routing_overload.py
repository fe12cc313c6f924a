"""The client's answer to RESOURCE_EXHAUSTED: idempotent calls back off and retry the same node;
other calls, and "message larger than max", fail at once (raftsched.client.routing)."""

from __future__ import annotations

import random

import pytest

from raftsched.client.errors import ClientError
from raftsched.client.routing import CallState, Router

OVERLOADED = "overloaded: the leader has 200 proposals waiting for commit; back off and retry"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state(idempotent: bool, clock: Clock, deadline: float = 10.0) -> CallState:
    router = Router.of(["a:1", "b:1", "c:1"])
    router.note_leader("b:1")
    return CallState(router, deadline, idempotent, rng=random.Random(7), clock=clock)


def test_idempotent_call_backs_off_longer_each_time_on_the_same_node() -> None:
    clock = Clock()
    s = state(True, clock)
    delays = []
    for _ in range(5):
        delays.append(s.failed("RESOURCE_EXHAUSTED", OVERLOADED, None))
        assert s.target() == "b:1"
        clock.now += delays[-1]
    assert all(0 < d <= 2.0 for d in delays)
    assert delays[-1] > delays[0]


def test_overload_retries_end_at_the_deadline_with_the_servers_message() -> None:
    clock = Clock()
    s = state(True, clock, deadline=1.0)
    with pytest.raises(ClientError) as err:
        while True:
            clock.now += s.failed("RESOURCE_EXHAUSTED", OVERLOADED, None)
            s.timeout()
    assert err.value.code == "RESOURCE_EXHAUSTED" and "back off" in err.value.message


@pytest.mark.parametrize(("idempotent", "message"), [
    (False, OVERLOADED),
    (True, "Received message larger than max (20000000 vs. 16777216)"),
])
def test_not_retried(idempotent: bool, message: str) -> None:
    with pytest.raises(ClientError) as err:
        state(idempotent, Clock()).failed("RESOURCE_EXHAUSTED", message, None)
    assert err.value.code == "RESOURCE_EXHAUSTED"

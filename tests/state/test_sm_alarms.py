"""Alarms in the state machine, and the hash points of the corruption check: every node hashes its
state at exactly the index of the CheckHashCmd, whatever the batching."""

from __future__ import annotations

from sm_harness import T0, Node, temp_node

from raftsched.state import commands as c
from raftsched.state.machine import StateDigest
from raftsched.v1 import commands_pb2, jobs_pb2

J = jobs_pb2


def check(check_id: int) -> commands_pb2.Command:
    return commands_pb2.Command(check_hash=commands_pb2.CheckHashCmd(check_id=check_id))


def test_alarms_are_raised_kept_and_cleared(node: Node) -> None:
    node.run(c.alarm("n2", "CORRUPT", active=True, reason="differs"))
    node.tick(5000)
    node.run(c.alarm("n2", "CORRUPT", active=True, reason="differs again"))  # keeps the first time
    [alarm] = node.state.alarms()
    assert (alarm.node, alarm.alarm, alarm.raised_ms, alarm.reason) == ("n2", "CORRUPT", T0, "differs again")
    assert node.state.alarms_of("n2") == ["CORRUPT"] and node.state.alarms_of("n1") == []
    node.reopen()
    assert node.state.alarms_of("n2") == ["CORRUPT"]
    node.run(c.alarm("n2", "CORRUPT", active=False))
    assert node.state.alarms() == []
    assert node.run(c.alarm("n2", "ON_FIRE", active=True)).error
    assert node.run(c.alarm("x" * 200, "CORRUPT", active=True)).error


def test_every_replica_hashes_the_state_at_the_check_index_whatever_the_batching() -> None:
    log = [c.encode(c.submit(J.JobSpec(handler="noop")), time_ms=T0) for _ in range(3)]
    log += [c.encode(check(7), time_ms=T0)]
    log += [c.encode(c.submit(J.JobSpec(handler="noop")), time_ms=T0) for _ in range(2)]
    with temp_node() as one, temp_node() as whole, temp_node() as reference:
        seen: dict[str, list[tuple[int, int, bytes]]] = {"one": [], "whole": []}
        for name, node in (("one", one), ("whole", whole)):
            node.state.on_hash_point = hasher(node, seen[name])
        for i, data in enumerate(log, start=1):
            one.state.apply([(i, data)])
        whole.state.apply(list(enumerate(log, start=1)))
        reference.state.apply(list(enumerate(log[:4], start=1)))  # the state right after the check
        assert [(cid, index) for cid, index, _ in seen["one"]] == [(7, 4)] == [(c, i) for c, i, _ in seen["whole"]]
        assert seen["one"][0][2] == seen["whole"][0][2] == reference.state.fingerprint()
        assert whole.state.applied_index == 6 and whole.state.fingerprint() != seen["whole"][0][2]


def hasher(node: Node, seen: list[tuple[int, int, bytes]]):  # type: ignore[no-untyped-def]
    """What the node does at a hash point: take the views now, hash them a few records at a time."""

    def hash_point(check_id: int, index: int) -> None:
        digest = StateDigest(node.state.views())
        while not digest.step(2):
            pass
        seen.append((check_id, index, digest.value()))

    return hash_point

"""Alarms in the state machine, and the hash points of the corruption check: every node hashes its
state at exactly the index of the CheckHashCmd, whatever the batching and whatever it applies while
it hashes, and tells the leader to wait for its digest meanwhile."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sm_harness import T0, Node, temp_node

from raftsched import corruption
from raftsched.api.admin_service import AdminService
from raftsched.corruption import StateHash, StateHasher
from raftsched.state import commands as c
from raftsched.state.machine import COLUMN_FAMILIES, StateDigest
from raftsched.v1 import admin_pb2, commands_pb2, jobs_pb2

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


def test_the_views_of_a_hash_point_see_the_state_of_that_point_whatever_is_written_after(node: Node) -> None:
    """The node hashes the views a few records per event-loop turn while apply goes on: jobs
    submitted, records changed, memtables flushed and compacted meanwhile must not reach the digest."""
    node.up("e1", slots=8)
    jobs = [node.submit() for _ in range(5)]
    at_check = node.state.fingerprint()
    digest = StateDigest(node.state.views())
    assert not digest.step(3)
    node.assign(jobs[0].id)  # changes records the digest has not read yet, and adds index entries
    for _ in range(5):
        node.submit()
        digest.step(1)
    for name in COLUMN_FAMILIES:
        node.db.cf(name).flush()
        node.db.cf(name).compact_range(None, None)
    while not digest.step(2):
        node.submit()
    assert node.state.fingerprint() != at_check
    assert digest.value() == at_check


async def test_a_node_that_applies_past_the_check_in_one_batch_hashes_the_state_at_the_check(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a busy or catching-up node does: the check and the entries after it come in one batch,
    and more batches are applied between the hasher's turns; its digest is still the check's."""
    monkeypatch.setattr(corruption, "STEP", 2)  # many turns, so applies interleave with the hash
    monkeypatch.setattr(corruption, "SLICE_S", 0.0)  # one step per turn
    monkeypatch.setattr(corruption, "REST_S", 0.0)
    submit = c.submit(J.JobSpec(handler="noop"))
    before = [c.encode(submit, time_ms=T0) for _ in range(6)] + [c.encode(check(7), time_ms=T0)]
    with temp_node() as reference:
        reference.replay(before)
        expected = reference.state.fingerprint()
    hasher = StateHasher(node.state)
    try:
        node.replay(before + [c.encode(submit, time_ms=T0) for _ in range(4)])
        while (found := hasher.get(7)) is None or found.digest is None:
            node.replay([c.encode(submit, time_ms=T0)])
            await asyncio.sleep(0)
    finally:
        await hasher.close()
    assert (found.index, found.digest) == (7, expected)
    assert node.state.applied_index > 11  # the hash really ran while apply went on


async def test_a_node_still_hashing_a_check_it_applied_past_tells_the_leader_to_ask_again(node: Node) -> None:
    """Its answer must not read as "past the check and not ready: it never will be" (it answered
    with its applied index, the leader stopped asking and counted a healthy node silent)."""
    hasher = StateHasher(node.state)
    service = AdminService(node=cast(Any, SimpleNamespace(id="n1")), cluster=cast(Any, None),
                           proposer=cast(Any, None), state=node.state, backups=cast(Any, hasher), election_ms=1000)
    context = cast(Any, SimpleNamespace(invocation_metadata=lambda: ()))
    ask = admin_pb2.StateHashRequest(check_id=7)
    submit = c.encode(c.submit(J.JobSpec(handler="noop")), time_ms=T0)
    try:
        node.replay([submit, c.encode(check(7), time_ms=T0), submit, submit])  # the hash has not run yet
        waiting = await service.StateHash(ask, context)
        assert (waiting.ready, waiting.applied_index, node.state.applied_index) == (False, 2, 4)
        while not (answer := await service.StateHash(ask, context)).ready:
            await asyncio.sleep(0)
        assert (answer.index, answer.digest) == (2, cast(StateHash, hasher.get(7)).digest)
        never = await service.StateHash(admin_pb2.StateHashRequest(check_id=8), context)
        assert (never.ready, never.applied_index) == (False, 4)  # no such check here: how far it applied
    finally:
        await hasher.close()


async def test_a_newer_check_supersedes_one_still_being_hashed(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each new leader checks soon after its election: successive transfers must not leave several
    hashes running at once. The older one is dropped (its node then answers that it applied past
    it without a digest); the newer one is hashed at its own index."""
    monkeypatch.setattr(corruption, "STEP", 1)
    monkeypatch.setattr(corruption, "SLICE_S", 0.0)  # one record per turn: the first is still running
    monkeypatch.setattr(corruption, "REST_S", 0.0)
    submit = c.encode(c.submit(J.JobSpec(handler="noop")), time_ms=T0)
    with temp_node() as reference:
        reference.replay([submit] * 3 + [c.encode(check(7), time_ms=T0)] + [submit] * 2
                         + [c.encode(check(8), time_ms=T0)])
        expected = reference.state.fingerprint()
    hasher = StateHasher(node.state)
    try:
        node.replay([submit] * 3 + [c.encode(check(7), time_ms=T0)])
        await asyncio.sleep(0)
        assert hasher.hashing_at(7) == 4
        node.replay([submit] * 2 + [c.encode(check(8), time_ms=T0)])
        assert hasher.get(7) is None and hasher.hashing_at(7) is None  # dropped: "past it, no digest"
        while (found := hasher.get(8)) is None or found.digest is None:
            await asyncio.sleep(0)
            assert sum(not task.done() for task in hasher._tasks) <= 1, "two hashes running at once"
    finally:
        await hasher.close()
    assert (found.index, found.digest) == (7, expected)

"""Faults, each a small class with start() and stop(), and the seeded schedule that mixes them.

A fault's start is an `invoke` op of process "nemesis" and its end an `info` op with the same f:
value {"phase": "start"|"end", "targets": [...], ...}. The schedule never impairs more than a
minority of the nodes at once (a killed, paused or cut-off node counts as impaired, and so does
a node taken out of the configuration by `membership` until it is a voter again), so SPEC §6
applies throughout; executor faults are not limited.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import grpc.aio
from cluster import Cluster
from faultbase import Fault, pick_node
from faults_clock import ClockFault
from faults_disk import DiskFault
from faults_divergence import Divergence
from faults_links import OneWay, SlowLinks
from history import History
from workload import ProxyAwareClient

from raftsched.client import ClientError, calls
from raftsched.v1 import admin_pb2, admin_pb2_grpc

KINDS = ("kill", "pause", "partition", "executor", "membership", "clock", "one-way", "slow", "disk")
# Scripted scenarios: asked for by name, never by `all` (they take the cluster below a majority).
SCENARIOS = ("divergence",)
PARTITION_MODES = ("drop", "blackhole")


@dataclass
class KillNode(Fault):
    """kill -9 a node (random or the leader); restart it at stop."""

    leader: bool = False
    avoid: frozenset[str] = frozenset()
    target: str = ""

    def __post_init__(self) -> None:
        self.f = "kill-leader" if self.leader else "kill"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        target = await pick_node(c, rng, self.leader, self.avoid)
        if target is None:
            return None
        self.target, self.impairs = target, frozenset({target})
        c.nodes[target].proc.kill9()
        return {"targets": [target]}

    async def stop(self, c: Cluster) -> dict[str, Any]:
        if not c.nodes[self.target].proc.alive():
            await c.start_node(self.target)
        return {"targets": [self.target], "action": "restart"}


@dataclass
class PauseNode(Fault):
    """SIGSTOP a node (random or the leader); SIGCONT at stop."""

    leader: bool = False
    avoid: frozenset[str] = frozenset()
    target: str = ""

    def __post_init__(self) -> None:
        self.f = "pause-leader" if self.leader else "pause"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        target = await pick_node(c, rng, self.leader, self.avoid)
        if target is None:
            return None
        self.target, self.impairs = target, frozenset({target})
        c.nodes[target].proc.pause()
        return {"targets": [target]}

    async def stop(self, c: Cluster) -> dict[str, Any]:
        c.nodes[self.target].proc.resume()
        return {"targets": [self.target], "action": "resume"}


def _cut(groups: list[list[str]], bridge: str | None = None) -> list[tuple[str, str]]:
    """Directed links between nodes of different groups (a bridge node keeps all its links)."""
    links = []
    for i, a in enumerate(groups):
        for j, b in enumerate(groups):
            if i != j:
                links += [(x, y) for x in a for y in b if bridge not in (x, y)]
    return links


@dataclass
class Partition(Fault):
    """Cut node-to-node links through the proxies, by drop or blackhole.

    shape: majority (a random minority cut off from the rest), leader (the leader alone),
    bridge (two halves that only one node still joins), halves (a random split, minority side
    first). Executor links are not touched.
    """

    shape: str = "majority"
    mode: str = "drop"
    avoid: frozenset[str] = frozenset()
    links: list[tuple[str, str]] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)
    is_partition = True

    def __post_init__(self) -> None:
        self.f = f"partition-{self.shape}"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        nodes = list(c.node_ids)
        minority = (len(nodes) - 1) // 2
        bridge = None
        if self.shape == "leader":
            lead = await c.find_leader() or rng.choice(nodes)
            small = [lead]
        elif self.shape == "bridge":
            rng.shuffle(nodes)
            bridge, rest = nodes[0], nodes[1:]
            small = rest[: len(rest) // 2]
        elif self.shape == "halves":
            rng.shuffle(nodes)
            small = nodes[: rng.randint(1, minority)]
        else:
            rng.shuffle(nodes)
            small = nodes[:minority]
        big = [n for n in c.node_ids if n not in small and n != bridge]
        self.groups = [sorted(small), sorted(big)]
        self.impairs = frozenset(small)
        self.links = _cut(self.groups, bridge)
        assert c.proxy is not None
        await c.proxy.set(self.links, self.mode)
        value: dict[str, Any] = {"targets": sorted(small), "groups": self.groups, "mode": self.mode}
        if bridge is not None:
            value["bridge"] = bridge
        return value

    async def stop(self, c: Cluster) -> dict[str, Any]:
        assert c.proxy is not None
        await c.proxy.set(self.links, "pass")
        return {"targets": self.groups[0], "groups": self.groups, "mode": self.mode, "action": "heal"}


@dataclass
class ExecutorFault(Fault):
    """kill -9 (then restart), pause (then resume) or cut off (then heal) one executor."""

    action: str = "kill"
    target: str = ""
    mode: str = "drop"

    def __post_init__(self) -> None:
        self.f = f"{self.action}-executor"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        if not c.executor_ids:
            return None
        self.target = rng.choice(c.executor_ids)
        proc = c.executors[self.target].proc
        if self.action == "kill":
            proc.kill9()
        elif self.action == "pause":
            proc.pause()
        else:
            assert c.proxy is not None
            await c.proxy.set([(self.target, n) for n in c.node_ids], self.mode)
            return {"targets": [self.target], "mode": self.mode}
        return {"targets": [self.target]}

    async def stop(self, c: Cluster) -> dict[str, Any]:
        proc = c.executors[self.target].proc
        if self.action == "kill":
            if not proc.alive():
                await c.start_executor(self.target)
            return {"targets": [self.target], "action": "restart"}
        if self.action == "pause":
            proc.resume()
            return {"targets": [self.target], "action": "resume"}
        assert c.proxy is not None
        await c.proxy.set([(self.target, n) for n in c.node_ids], "pass")
        return {"targets": [self.target], "mode": self.mode, "action": "heal"}


# Deadlines (s) of the membership fault's Admin calls, each also its single attempt's: a change
# waits up to 20 s for its entry to apply on the leader, a promotion up to 30 s more for catch-up.
MEMBER_CALL_TIMEOUT = 25.0
PROMOTE_TIMEOUT = 60.0
READD_DEADLINE = 120.0  # how long stop() keeps trying to make the node a voter again


def _outcome(err: Exception | None) -> str:
    """ok; fail:CODE when the change certainly did not happen; info:CODE when it may have."""
    if err is None:
        return "ok"
    code = err.code if isinstance(err, ClientError) else type(err).__name__
    certain = isinstance(err, ClientError) and code in ("FAILED_PRECONDITION", "INVALID_ARGUMENT", "UNAVAILABLE")
    return f"{'fail' if certain else 'info'}:{code}"


@dataclass
class MembershipChange(Fault):
    """Take a random non-leader voter out of the configuration and put it back (5 nodes only).

    start: `member remove ID` (in a background task, so the start is recorded before the change);
    with `restart`, the removed node is also killed -9. stop: waits for the removal to be decided,
    then, by what the leader's ListMembers says, `member add ID ADDR --learner` (ADDR: the node's
    shared proxy, which tells each caller by its process, so partitions cut it as before), restarts the
    node from its data directory if it is not running, and `member promote ID`; retried until
    READD_DEADLINE. The node counts as impaired from start until stop() has returned."""

    restart: bool = False
    avoid: frozenset[str] = frozenset()
    target: str = ""
    _removing: asyncio.Task[str] | None = None

    def __post_init__(self) -> None:
        self.f = "membership"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        lead = await c.find_leader()
        if lead is None:
            return None
        members = await _members(c, lead)
        if members is None or len(members.voters) < len(c.node_ids) or members.learners:
            return None  # a previous change is not complete (or the leader did not answer)
        healthy = [n for n in c.node_ids if n not in self.avoid and n != lead
                   and await c.local_status(n) is not None]
        if not healthy:
            return None
        self.target = rng.choice(healthy)
        self.impairs = frozenset({self.target})
        self._removing = asyncio.create_task(self._remove(c, lead))
        return {"targets": [self.target], "restart": self.restart, "leader_at_pick": lead}

    async def _remove(self, c: Cluster, lead: str) -> str:
        try:
            async with _admin_client(c, lead, MEMBER_CALL_TIMEOUT) as client:
                await client._unary(calls.remove_member(self.target), MEMBER_CALL_TIMEOUT)
            err = None
        except Exception as e:  # any failure: recorded, and stop() goes by the leader's view
            err = e
        if self.restart and (err is None or _outcome(err).startswith("info")):
            c.nodes[self.target].proc.kill9()
        return _outcome(err)

    async def stop(self, c: Cluster) -> dict[str, Any]:
        removed = await self._removing if self._removing is not None else "not-started"
        steps: list[str] = []
        voters: list[str] = []
        deadline = asyncio.get_running_loop().time() + READD_DEADLINE
        proc = c.nodes[self.target].proc
        while asyncio.get_running_loop().time() < deadline:
            lead = await c.find_leader()
            members = await _members(c, lead) if lead is not None else None
            if members is None:
                await asyncio.sleep(0.5)
                continue
            voters = sorted(m.id for m in members.voters)
            learners = {m.id for m in members.learners}
            if self.target in voters:
                if not proc.alive():  # removal failed while the restart variant killed it
                    await c.start_node(self.target)
                    steps.append("restart")
                break
            if self.target not in learners:
                # through its shared proxy, so that partitions still cut it (the proxy tells each
                # caller by its process)
                step, call = "add", calls.add_member(self.target, c.shared[self.target], True)
                timeout = MEMBER_CALL_TIMEOUT
            else:
                if not proc.alive():
                    await c.start_node(self.target)
                    steps.append("restart")
                step, call, timeout = "promote", calls.promote_member(self.target), PROMOTE_TIMEOUT
            assert lead is not None
            try:
                async with _admin_client(c, lead, timeout) as client:
                    await client._unary(call, timeout)
                steps.append(f"{step}:ok")
            except Exception as e:
                steps.append(f"{step}:{_outcome(e)}")
                await asyncio.sleep(1.0)
        readded = self.target in voters
        return {"targets": [self.target], "action": "re-add", "remove": removed, "steps": steps,
                "outcome": "ok" if readded else "info", "voters": voters}


def _admin_client(c: Cluster, lead: str, timeout: float) -> ProxyAwareClient:
    """A client that asks the leader first, then the others (each node's own port)."""
    addresses = [c.nodes[lead].address] + [a for a in c.addresses if a != c.nodes[lead].address]
    return ProxyAwareClient(c, addresses, timeout=timeout, attempt_timeout=timeout)


async def _members(c: Cluster, nid: str) -> admin_pb2.ListMembersResponse | None:
    """The configuration as node `nid` (the leader: the latest one, committed or not) has it."""
    stub = admin_pb2_grpc.AdminStub(c.channel(c.nodes[nid].address))
    try:
        return await stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=2.0)
    except grpc.aio.AioRpcError:
        return None


def _sets_links(fault: Fault) -> bool:
    return fault.is_partition or isinstance(fault, SlowLinks) or (
        isinstance(fault, ExecutorFault) and fault.action == "partition")


def make_fault(kind: str, rng: random.Random, n_nodes: int) -> Fault:
    """A fault of one enabled kind, its variant drawn from rng."""
    if kind == "kill":
        return KillNode(leader=rng.random() < 0.4)
    if kind == "pause":
        return PauseNode(leader=rng.random() < 0.4)
    if kind == "partition":
        shapes = ["majority", "leader", "halves"] + (["bridge"] if n_nodes >= 3 else [])
        return Partition(shape=rng.choice(shapes), mode=rng.choice(PARTITION_MODES))
    if kind == "executor":
        return ExecutorFault(action=rng.choice(["kill", "pause", "partition"]), mode=rng.choice(PARTITION_MODES))
    if kind == "membership":
        return MembershipChange(restart=rng.random() < 0.5)
    if kind == "clock":
        r = rng.random()
        return ClockFault(action=rng.choice(["step", "drift", "jump-back"]), leader=r < 0.5, executor=r > 0.85)
    if kind == "one-way":
        return OneWay(leader=rng.random() < 0.5, outbound=rng.random() < 0.5)
    if kind == "slow":
        return SlowLinks(lossy=rng.random() < 0.5)
    if kind == "disk":
        return DiskFault(kind=rng.choice(["truncate-wal", "bitflip", "delete"]))
    if kind == "divergence":
        return Divergence()
    raise ValueError(f"unknown fault kind {kind!r}")


@dataclass
class Nemesis:
    """Runs a seeded mix of the enabled kinds: a fault lasts 2-8 s, starts come about every
    `interval` seconds; kinds are dealt from a shuffled deck so each appears early."""

    cluster: Cluster
    history: History
    kinds: list[str]
    rng: random.Random
    interval: float = 5.0
    min_duration: float = 2.0
    max_duration: float = 8.0
    active: list[Fault] = field(default_factory=list)
    stopping: list[Fault] = field(default_factory=list)  # stop() under way: still impairing
    _timers: dict[asyncio.Task[None], Fault] = field(default_factory=dict)
    _deck: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def _next_kind(self) -> str:
        if not self._deck:
            self._deck = list(self.kinds)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def _budget_ok(self, fault: Fault) -> bool:
        minority = (len(self.cluster.node_ids) - 1) // 2
        current = self.active + self.stopping
        if isinstance(fault, Divergence) or any(isinstance(f, Divergence) for f in current):
            return not current  # a scenario runs alone
        impaired = set().union(*(f.impairs for f in current)) if current else set()
        if _sets_links(fault) and any(_sets_links(f) for f in current):
            return False  # one fault at a time sets proxy modes: a heal never undoes another's cut
        if isinstance(fault, ClockFault):
            return not any(isinstance(f, ClockFault) for f in current)  # one clock moved at a time
        node_faults = isinstance(fault, KillNode | PauseNode | Partition | MembershipChange | OneWay | DiskFault)
        if not node_faults:
            return True
        changes = MembershipChange | DiskFault  # a disk fault's rebuild leaves and rejoins the membership
        if isinstance(fault, changes) and any(isinstance(f, changes) for f in current):
            return False  # never two membership changes at once
        if len(impaired) >= minority:
            return False
        if isinstance(fault, KillNode | PauseNode | MembershipChange | DiskFault):
            fault.avoid = frozenset(impaired)
        return not (fault.is_partition and impaired)  # a partition picks its own minority

    async def run(self) -> None:
        """Until cancelled: wait a gap, start a fault if the budget allows, stop it later."""
        if not self.kinds:
            await asyncio.Event().wait()
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))
        while True:
            fault = self._draw_allowed()
            while fault is None:  # every kind is blocked for now (a long disk rebuild, say)
                await asyncio.sleep(0.5)
                fault = self._draw_allowed()
            await self._start(fault)
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.interval)

    def _draw_allowed(self) -> Fault | None:
        """The next fault from the deck that the budget allows, trying each kind at most once:
        one blocked kind (a membership change while a disk fault rebuilds) does not stall the rest."""
        for _ in range(len(self.kinds)):
            fault = make_fault(self._next_kind(), self.rng, len(self.cluster.node_ids))
            if self._budget_ok(fault):
                return fault
        return None

    async def _start(self, fault: Fault) -> None:
        value = await fault.start(self.cluster, self.rng)
        if value is None:
            return
        self.history.append("nemesis", "invoke", fault.f, {"phase": "start", **value})
        self.log.append(f"{self.history.now() / 1e9:7.2f}s start {fault.f} {value}")
        self.active.append(fault)
        duration = self.rng.uniform(self.min_duration, self.max_duration)
        task = asyncio.create_task(self._stop_later(fault, duration))
        self._timers[task] = fault
        task.add_done_callback(lambda t: self._timers.pop(t, None))

    async def _stop_later(self, fault: Fault, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            return  # stop_all() ends this fault itself
        await self._stop(fault)

    async def _stop(self, fault: Fault) -> None:
        if fault not in self.active:
            return
        self.active.remove(fault)
        self.stopping.append(fault)
        try:
            value = await fault.stop(self.cluster)
        finally:
            self.stopping.remove(fault)
        self.history.append("nemesis", "info", fault.f, {"phase": "end", **value})
        self.log.append(f"{self.history.now() / 1e9:7.2f}s end   {fault.f} {value}")

    async def stop_all(self) -> None:
        """End every active fault now, recording each end (used when the fault phase is over).

        A timer still sleeping is cancelled; one already stopping its fault is awaited."""
        for task, fault in list(self._timers.items()):
            if fault in self.active:
                task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        for fault in list(self.active):
            await self._stop(fault)

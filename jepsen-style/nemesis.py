"""Faults, each a small class with start() and stop(), and the seeded schedule that mixes them.

A fault's start is an `invoke` op of process "nemesis" and its end an `info` op with the same f:
value {"phase": "start"|"end", "targets": [...], ...}. The schedule never impairs more than a
minority of the nodes at once (a killed, paused or cut-off node counts as impaired), so SPEC §6
applies throughout; executor faults are not limited.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from cluster import Cluster
from history import History

KINDS = ("kill", "pause", "partition", "executor", "membership")
PARTITION_MODES = ("drop", "blackhole")


class Fault:
    """One fault. start() returns the value recorded at start; stop() undoes it."""

    f = "fault"
    impairs: frozenset[str] = frozenset()  # nodes this fault takes out of the majority
    is_partition = False

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        raise NotImplementedError

    async def stop(self, c: Cluster) -> dict[str, Any]:
        raise NotImplementedError


async def _pick_node(c: Cluster, rng: random.Random, leader: bool, avoid: frozenset[str]) -> str | None:
    """The leader (by Admin Status) when asked and known, else a random node not in `avoid`."""
    if leader:
        lead = await c.find_leader()
        if lead is not None and lead not in avoid:
            return lead
    candidates = [n for n in c.node_ids if n not in avoid]
    return rng.choice(candidates) if candidates else None


@dataclass
class KillNode(Fault):
    """kill -9 a node (random or the leader); restart it at stop."""

    leader: bool = False
    avoid: frozenset[str] = frozenset()
    target: str = ""

    def __post_init__(self) -> None:
        self.f = "kill-leader" if self.leader else "kill"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        target = await _pick_node(c, rng, self.leader, self.avoid)
        if target is None:
            return None
        self.target, self.impairs = target, frozenset({target})
        c.nodes[target].proc.kill9()
        return {"targets": [target]}

    async def stop(self, c: Cluster) -> dict[str, Any]:
        proc = c.nodes[self.target].proc
        if not proc.alive():
            proc.start()
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
        target = await _pick_node(c, rng, self.leader, self.avoid)
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
        impaired = set().union(*(f.impairs for f in self.active)) if self.active else set()
        node_faults = isinstance(fault, KillNode | PauseNode | Partition)
        if not node_faults:
            return True
        if fault.is_partition and any(f.is_partition for f in self.active):
            return False
        if len(impaired) >= minority:
            return False
        if isinstance(fault, KillNode | PauseNode):
            fault.avoid = frozenset(impaired)
        return not (fault.is_partition and impaired)  # a partition picks its own minority

    async def run(self) -> None:
        """Until cancelled: wait a gap, start a fault if the budget allows, stop it later."""
        if not self.kinds:
            await asyncio.Event().wait()
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))
        while True:
            kind = self._next_kind()
            fault = make_fault(kind, self.rng, len(self.cluster.node_ids))
            while not self._budget_ok(fault):
                await asyncio.sleep(0.5)
            await self._start(fault)
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.interval)

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
        value = await fault.stop(self.cluster)
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

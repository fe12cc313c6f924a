"""The clock nemesis: a node's or an executor's wall clock steps, drifts or jumps back.

Every process of a run with `clock` runs under libfaketime with its own offset file
(cluster.faketime_env); CLOCK_MONOTONIC is never faked, as an NTP step leaves it alone. So
leases, timeouts and elections (monotonic) must not notice, while anything read from the wall
clock (scheduled times, submitted_ms, job timeouts stamped by the leader) moves.

    clock-step       the offset becomes ±(1 s … 10 min) at once (forward or back), until the end
    clock-drift      the offset grows by rate * elapsed (rate ±5 % … ±50 %), updated every 100 ms
    clock-jump-back  the offset becomes -(1 s … 10 min) at once
At the end the offset returns to 0 in one step (itself a jump, back for a forward fault). Each
start and end value carries "offsets_s" {process: seconds}: the checkers read the nemesis log
to know how far any clock was from the truth and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster import Cluster
from faultbase import Fault

MAX_STEP_S = 600.0
MIN_STEP_S = 1.0
DRIFT_RATES = (0.05, 0.5)
DRIFT_TICK_S = 0.1
ACTIONS = ("step", "drift", "jump-back")


def write_offset(path: Path, seconds: float) -> None:
    """Set a libfaketime timestamp file to a relative offset, atomically (a reader never sees
    it empty or half written)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{seconds:+.3f}\n")
    os.replace(tmp, path)


def read_offset(path: Path) -> float:
    text = path.read_text().split()
    return float(text[0]) if text else 0.0


def draw_step(rng: random.Random, action: str) -> float:
    """A step of 1 s … 10 min, log-uniform (most are seconds to a minute); back for jump-back."""
    size = MIN_STEP_S * (MAX_STEP_S / MIN_STEP_S) ** rng.random()
    sign = -1.0 if action == "jump-back" or (action == "step" and rng.random() < 0.5) else 1.0
    return round(sign * size, 3)


@dataclass
class ClockFault(Fault):
    """Move the wall clock of one process: the leader (when asked), a node, or an executor."""

    action: str = "step"
    leader: bool = False
    executor: bool = False
    target: str = ""
    offset: float = 0.0
    rate: float = 0.0
    _drift: asyncio.Task[None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"clock action must be one of {ACTIONS}, not {self.action!r}")
        self.f = f"clock-{self.action}"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        if not c.faketime:
            return None
        target = await self._pick(c, rng)
        if target is None:
            return None
        self.target = target
        path = c.clock_file(target)
        if self.action == "drift":
            self.rate = round(rng.uniform(*DRIFT_RATES) * rng.choice((-1, 1)), 3)
            self._drift = asyncio.create_task(self._drift_loop(path))
        else:
            self.offset = draw_step(rng, self.action)
            write_offset(path, self.offset)
        return {"targets": [target], "action": self.action, "offsets_s": {target: self.offset},
                **({"rate": self.rate} if self.action == "drift" else {})}

    async def _pick(self, c: Cluster, rng: random.Random) -> str | None:
        """A process under libfaketime (Cluster.faked): the leader when asked and it is one."""
        faked = c.faked
        executors = [e for e in faked if e in c.executor_ids]
        nodes = [n for n in faked if n in c.node_ids]
        if self.executor and executors:
            return rng.choice(executors)
        if self.leader:
            lead = await c.find_leader()
            if lead in nodes:
                return lead
        return rng.choice(nodes) if nodes else None

    async def _drift_loop(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while True:
            self.offset = round(self.rate * (loop.time() - t0), 3)
            write_offset(path, self.offset)
            await asyncio.sleep(DRIFT_TICK_S)

    async def stop(self, c: Cluster) -> dict[str, Any]:
        if self._drift is not None:
            self._drift.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drift
        reached = self.offset
        write_offset(c.clock_file(self.target), 0.0)
        return {"targets": [self.target], "action": "reset", "offsets_s": {self.target: 0.0},
                "reached_s": reached}

"""The shape every fault has, shared by nemesis.py and the fault modules beside it."""

from __future__ import annotations

import random
from typing import Any

from cluster import Cluster


class Fault:
    """One fault. start() returns the value recorded at start; stop() undoes it."""

    f = "fault"
    impairs: frozenset[str] = frozenset()  # nodes this fault takes out of the majority
    is_partition = False

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        raise NotImplementedError

    async def stop(self, c: Cluster) -> dict[str, Any]:
        raise NotImplementedError


async def pick_node(c: Cluster, rng: random.Random, leader: bool, avoid: frozenset[str]) -> str | None:
    """The leader (by Admin Status) when asked and known, else a random node not in `avoid`."""
    if leader:
        lead = await c.find_leader()
        if lead is not None and lead not in avoid:
            return lead
    candidates = [n for n in c.node_ids if n not in avoid]
    return rng.choice(candidates) if candidates else None

"""Link nemeses in the proxies: one direction of a pair of nodes cut, and slow or lossy links.

    one-way-leader   the leader's messages reach the others, theirs never reach it (it keeps
                     sending heartbeats nobody can answer), or, drawn half the time, the reverse
    one-way          the same between a random minority and the rest
    slow-links       a random fraction of all links (node-node and executor-node) gets 50-500 ms
                     of latency with jitter; half the time also loss: chunks reset their
                     connection and new connections are refused, each with probability 1-5 %

A one-way cut is, per directed link A->B between the sides: A->B forwards A's requests and holds
B's replies (proxy mode one-way), B->A holds everything (blackhole). gRPC answers on the
connection a request came on, so this is what "A hears B but cannot answer" means on the wire.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from cluster import Cluster
from faultbase import Fault

DELAY_MS = (50, 500)
LOSS = (0.01, 0.05)
SLOW_FRACTION = (0.2, 0.5)
Link = tuple[str, str]


def one_way_links(speakers: list[str], hearers: list[str]) -> tuple[list[Link], list[Link]]:
    """(links in mode one-way, links blackholed) so that speakers reach hearers and not back."""
    forward = [(s, h) for s in speakers for h in hearers if s != h]
    back = [(h, s) for s in speakers for h in hearers if s != h]
    return forward, back


@dataclass
class OneWay(Fault):
    """Cut one direction between a minority (the leader alone when `leader`) and the rest."""

    leader: bool = False
    outbound: bool = True  # the minority still speaks (True) or still hears (False)
    groups: list[list[str]] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    is_partition = True

    def __post_init__(self) -> None:
        self.f = "one-way-leader" if self.leader else "one-way"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        nodes = list(c.node_ids)
        lead = await c.find_leader() if self.leader else None
        if lead is not None:
            small = [lead]
        else:
            rng.shuffle(nodes)
            small = nodes[: rng.randint(1, (len(nodes) - 1) // 2)]
        big = [n for n in c.node_ids if n not in small]
        self.groups = [sorted(small), sorted(big)]
        self.impairs = frozenset(small)
        speakers, hearers = (small, big) if self.outbound else (big, small)
        forward, back = one_way_links(speakers, hearers)
        self.links = forward + back
        assert c.proxy is not None
        await c.proxy.set(forward, "one-way")
        await c.proxy.set(back, "blackhole")
        return {"targets": sorted(small), "groups": self.groups, "speakers": sorted(speakers),
                "hearers": sorted(hearers)}

    async def stop(self, c: Cluster) -> dict[str, Any]:
        assert c.proxy is not None
        await c.proxy.set(self.links, "pass")
        return {"targets": self.groups[0], "groups": self.groups, "action": "heal"}


@dataclass
class SlowLinks(Fault):
    """Latency with jitter, and maybe loss, on a random fraction of every link of the run."""

    lossy: bool = False
    links: list[Link] = field(default_factory=list)
    delay_ms: tuple[int, int] = DELAY_MS
    loss: float = 0.0

    def __post_init__(self) -> None:
        self.f = "slow-lossy-links" if self.lossy else "slow-links"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        every = [(s, d) for s in c.node_ids + c.executor_ids for d in c.node_ids if s != d]
        share = rng.uniform(*SLOW_FRACTION)
        self.links = sorted(rng.sample(every, max(1, round(share * len(every)))))
        lo = rng.randint(DELAY_MS[0], DELAY_MS[1] // 2)
        self.delay_ms = (lo, rng.randint(lo, DELAY_MS[1]))
        self.loss = round(rng.uniform(*LOSS), 3) if self.lossy else 0.0
        assert c.proxy is not None
        await c.proxy.set(self.links, "slow", delay_ms=list(self.delay_ms), loss=self.loss)
        return {"targets": sorted({n for link in self.links for n in link}),
                "links": [f"{s}->{d}" for s, d in self.links], "delay_ms": list(self.delay_ms), "loss": self.loss}

    async def stop(self, c: Cluster) -> dict[str, Any]:
        assert c.proxy is not None
        await c.proxy.set(self.links, "pass")
        return {"targets": [], "links": len(self.links), "action": "heal"}

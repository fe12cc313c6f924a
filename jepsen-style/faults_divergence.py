"""The divergence scenario: Raft thesis Figure 3.7 played on a real 3-node cluster.

A random fault almost never builds this history, yet it is the one that tells a leader that
commits an earlier term's entry by counting replicas (§3.6.2) from a correct one. Steps, with
A the leader and W, V the others:

  1. cut A off; clients' submits reach A alone (entries X at index i..), while W and V hold the
     same log up to i-1 (else heal and try again);
  2. W and V elect one of them (call it W) over links slowed to DELAY_MS each way (slowed before
     the cut: they campaign as soon as the leader's streams break); kill -9 W as soon as it leads,
     before its first entry (Y at i, a later term than X) reaches V;
  3. let A and V elect A (A's log is longer), A->V slowed. A's first append to V that V accepts
     carries X_i alone when the nodes run with --max-append-bytes 1: a correct A commits nothing
     until its own term's entry is on V, a buggy one commits X_i then. As soon as A's commit index
     moves, pause A and cut it off, so that nothing after X_i reaches V;
  4. restart W: its last term beats V's, V votes for it, and W's Y replaces X_i on V.
  stop: resume A and heal. A correct cluster converges (X_i was never committed). A buggy one now
  has X_i committed on A and Y committed on W and V at the same index: the log_prefix checker
  sees them differ.

The scenario takes the cluster below a majority for seconds at a time, so it is not one of the
random kinds (`all` leaves it out) and runs alone. It needs exactly 3 nodes. The start value
says how far it got ("reached": the last step done) and what each step saw.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cluster import Cluster
from faultbase import Fault

from raftsched.v1 import admin_pb2

DELAY_MS = 200  # per direction: longer than it takes to see a new leader and stop it, short of
# the 1 s vote deadline for a round trip
POLL_S = 0.02
EQUAL_TRIES = 10  # cuts tried until W and V hold the same log and A holds more
ELECT_TIMEOUT_S = 20.0
Link = tuple[str, str]


def both_ways(a: str, others: list[str]) -> list[Link]:
    return [(a, o) for o in others] + [(o, a) for o in others]


async def _poll(probe: Callable[[], Awaitable[Any]], timeout: float, interval: float = POLL_S) -> Any:
    """The first truthy result of `probe`, asked every `interval` s, or None after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(interval)
    return None


async def _leader_among(c: Cluster, nodes: list[str]) -> tuple[str, admin_pb2.NodeStatus] | None:
    """The first of `nodes` that says it leads, with its status."""
    for n in nodes:
        st = await c.local_status(n)
        if st is not None and st.role == admin_pb2.ROLE_LEADER:
            return n, st
    return None


@dataclass
class Divergence(Fault):
    """Figure 3.7 on nodes (A, W, V); see the module docstring."""

    f: str = "divergence"
    is_partition = True
    a: str = ""
    w: str = ""
    v: str = ""
    steps: dict[str, Any] = field(default_factory=dict)

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        if len(c.node_ids) != 3:
            return None
        lead = await c.find_leader()
        if lead is None:
            return None
        self.a = lead
        self.impairs = frozenset(c.node_ids)
        others = [n for n in c.node_ids if n != lead]
        assert c.proxy is not None
        try:
            if (await self._cut_leader_with_more(c, others) and await self._elect_and_kill(c, others)
                    and await self._old_leader_back(c)):
                await self._restart_rival(c)
        except Exception as err:  # a step failed: stop() still heals everything
            self.steps["error"] = repr(err)
        return {"targets": [self.a, self.w, self.v] if self.w else [self.a], **self.steps}

    async def _last_and_commit(self, c: Cluster, nid: str) -> tuple[int, int] | None:
        st = await c.local_status(nid)
        return (st.last_log_index, st.commit_index) if st is not None else None

    async def _all_equal(self, c: Cluster, nodes: list[str]) -> bool:
        lasts = {await self._last_and_commit(c, n) for n in nodes}
        return len({v[0] if v is not None else None for v in lasts}) == 1 and None not in lasts

    async def _cut_leader_with_more(self, c: Cluster, others: list[str]) -> bool:
        """Step 1: A cut off holding entries past the others' equal logs. The nodes run with
        --max-append-bytes 1 (an entry per append), so under load a cut at a random moment rarely
        finds the two followers equal (make test under load saw 10 cuts in a row find them
        unequal): each cut waits (up to 3 s) for a moment when all three hold the same last index,
        when nothing is in flight."""
        assert c.proxy is not None
        pair = [(others[0], others[1]), (others[1], others[0])]
        for attempt in range(EQUAL_TRIES):
            # slow first: the two elect at once when the leader's streams break
            await c.proxy.set(pair, "slow", delay_ms=[DELAY_MS, DELAY_MS])
            await _poll(lambda: self._all_equal(c, [self.a, *others]), 3.0, interval=0.0)
            await c.proxy.set(both_ways(self.a, others), "drop")
            await asyncio.sleep(0.2)  # what was in flight lands or is dropped
            logs = {n: await self._last_and_commit(c, n) for n in others}
            if any(v is None for v in logs.values()):
                return False
            lasts = {v[0] for v in logs.values() if v is not None}

            async def a_ahead(lasts: set[int] = lasts) -> bool:
                mine = await self._last_and_commit(c, self.a)
                return mine is not None and mine[0] > max(lasts)

            if len(lasts) == 1 and await _poll(a_ahead, 2.0):
                mine = await self._last_and_commit(c, self.a)
                self.steps.update(reached=1, cut_tries=attempt + 1, follower_last=lasts.pop(),
                                  leader_last=mine[0] if mine else None)
                return True
            await c.proxy.set(both_ways(self.a, others) + pair, "pass")
            await asyncio.sleep(1.0)
        self.steps.update(reached=0, cut_tries=EQUAL_TRIES, note="followers never held equal logs at a cut")
        return False

    async def _elect_and_kill(self, c: Cluster, others: list[str]) -> bool:
        """Step 2: W wins over slow links and dies before its first entry reaches V."""
        assert c.proxy is not None
        pair = [(others[0], others[1]), (others[1], others[0])]

        won = await _poll(lambda: _leader_among(c, others), ELECT_TIMEOUT_S)
        if won is None:
            self.steps["note"] = "no leader among the two in time"
            return False
        self.w, st = won
        c.nodes[self.w].proc.kill9()
        await c.proxy.set(pair, "drop")
        self.v = next(n for n in others if n != self.w)
        self.steps.update(reached=2, rival=self.w, rival_term=st.term, rival_last=st.last_log_index, voter=self.v)
        return True

    async def _old_leader_back(self, c: Cluster) -> bool:
        """Step 3: A leads again with V; pause it the moment its commit index moves."""
        assert c.proxy is not None
        await c.proxy.set([(self.v, self.a)], "pass")
        await c.proxy.set([(self.a, self.v)], "slow", delay_ms=[DELAY_MS, DELAY_MS])

        last_before = 0  # A's last index before it leads again: its own no-op comes right after

        async def a_leads() -> admin_pb2.NodeStatus | None:
            nonlocal last_before
            st = await c.local_status(self.a)
            if st is None:
                return None
            if st.role == admin_pb2.ROLE_LEADER and st.term > self.steps["rival_term"]:
                return st
            last_before = st.last_log_index
            return None

        won = await _poll(a_leads, ELECT_TIMEOUT_S)
        if won is None:
            self.steps["note"] = "the old leader did not lead again in time"
            return False

        async def moved() -> admin_pb2.NodeStatus | None:
            st = await c.local_status(self.a)
            return st if st is not None and st.commit_index > won.commit_index else None

        after = await _poll(moved, 8 * DELAY_MS / 1000 + 5.0)
        c.nodes[self.a].proc.pause()
        await c.proxy.set(both_ways(self.a, [self.v, self.w]), "drop")
        self.steps.update(reached=3, leader_term=won.term, commit_before=won.commit_index,
                          own_first_entry=last_before + 1,
                          commit_after=after.commit_index if after is not None else None)
        return True

    async def _restart_rival(self, c: Cluster) -> None:
        """Step 4: W, back, wins V's vote with its later last term."""
        assert c.proxy is not None
        await c.proxy.set([(self.w, self.v), (self.v, self.w)], "pass")
        await c.start_node(self.w)

        won = await _poll(lambda: _leader_among(c, [self.w, self.v]), ELECT_TIMEOUT_S)
        self.steps.update(reached=4, new_leader=won[0] if won else None)

    async def stop(self, c: Cluster) -> dict[str, Any]:
        assert c.proxy is not None
        c.nodes[self.a].proc.resume()
        for n in (self.w, self.v):
            if n and not c.nodes[n].proc.alive():
                await c.start_node(n)
        await c.proxy.set(both_ways(self.a, [n for n in c.node_ids if n != self.a])
                          + ([(self.w, self.v), (self.v, self.w)] if self.w else []), "pass")
        return {"targets": [self.a, self.w, self.v] if self.w else [self.a], "action": "heal"}

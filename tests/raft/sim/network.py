"""An in-memory network driven by one seeded rng: loss, delay, duplication, reordering, partitions.

Shaped after raft-rs's `harness/src/network.rs` (`cut`, `isolate`, `recover`), with the fault
strengths held in a small frozen `Faults` value that `Faults.draw` picks from the seed (swarm
testing: every seed gets a different mix).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from raftsched.raft.appends import merge_appends
from raftsched.raft.messages import AppendRequest, Message

MAX_IN_FLIGHT = 50_000  # a bound on the queue: a run that exceeds it is a harness bug


@dataclass(frozen=True, slots=True)
class Faults:
    """How hostile the world is. Probabilities are per message (loss, dup) or per tick (the rest)."""

    loss: float = 0.0  # a message is dropped
    dup: float = 0.0  # a message is delivered twice (each copy with its own delay)
    max_delay: int = 0  # extra delay in ticks, uniform in [0, max_delay]; also reorders
    partition_rate: float = 0.0  # the partition changes (a new cut, or a heal)
    crash_rate: float = 0.0  # some live node crashes
    restart_rate: float = 0.0  # each crashed node restarts
    compact_rate: float = 0.0  # each live node compacts its log up to what it applied
    torn_rate: float = 0.0  # per ready that writes: crash inside it, then restart at once

    @classmethod
    def draw(cls, rng: random.Random) -> Faults:
        """Swarm testing: switch each fault on or off, then pick its strength, all from `rng`."""

        def maybe(p_on: float, lo: float, hi: float) -> float:
            return rng.uniform(lo, hi) if rng.random() < p_on else 0.0

        return cls(
            loss=maybe(0.5, 0.01, 0.25),
            dup=maybe(0.4, 0.01, 0.15),
            max_delay=rng.choice((0, 0, 1, 2, 3)),
            partition_rate=maybe(0.6, 0.01, 0.08),
            crash_rate=maybe(0.5, 0.005, 0.03),
            restart_rate=rng.uniform(0.03, 0.2),
            compact_rate=maybe(0.4, 0.005, 0.05),
            torn_rate=maybe(0.4, 0.005, 0.05),
        )


NO_FAULTS = Faults()


@dataclass(slots=True)
class NetStats:
    sent: int = 0
    lost: int = 0
    cut: int = 0
    duplicated: int = 0
    delivered: int = 0
    merged: int = 0


class Network:
    """Messages wait in a heap keyed by delivery tick; the ones due together are shuffled."""

    def __init__(self, rng: random.Random, faults: Faults = NO_FAULTS) -> None:
        self.rng = rng
        self.faults = faults
        self.stats = NetStats()
        self.on_drop: Callable[[Message], None] | None = None  # a local "unreachable" report
        # (delivery tick, send number, message): a plain tuple, compared in C (the send number is
        # unique, so the message is never compared); a dataclass's __lt__ was 2 % of a simulation
        self._queue: list[tuple[int, int, Message]] = []
        self._seq = 0
        self._cut: set[frozenset[str]] = set()  # Invariant: every element has two node ids
        self._ignored: set[type] = set()
        # As the real transport does with a peer's queued appends (raftsched.raft.appends): an
        # append due together with the one it continues is delivered merged into it.
        self.merge_appends_within = 0  # bytes; 0: never merge

    # --- sending and delivering ---

    def send(self, msg: Message, now: int) -> None:
        """Queue `msg` for delivery at `now + 1 + delay`, unless lost, cut or ignored."""
        self.stats.sent += 1
        if self._blocked(msg):
            self._drop(msg, cut=True)
            return
        if self.faults.loss and self.rng.random() < self.faults.loss:
            self._drop(msg, cut=False)
            return
        self._push(msg, now)
        if self.faults.dup and self.rng.random() < self.faults.dup:
            self.stats.duplicated += 1
            self._push(msg, now)

    def due(self, now: int) -> list[Message]:
        """Every message due by `now` whose link is still up, in an order drawn from the rng."""
        ready: list[Message] = []
        while self._queue and self._queue[0][0] <= now:
            msg = heapq.heappop(self._queue)[2]
            if self._blocked(msg):
                self._drop(msg, cut=True)
            else:
                ready.append(msg)
        if self.merge_appends_within:
            ready = self._merged(ready)
        self.rng.shuffle(ready)
        self.stats.delivered += len(ready)
        return ready

    def _merged(self, ready: list[Message]) -> list[Message]:
        """`ready` with every append that continues an earlier one to the same node (in send order)
        merged into it; the merged message takes the earlier one's place."""
        out: list[Message] = []
        last_append: dict[tuple[str, str], int] = {}  # (from, to) -> position in out
        for msg in ready:
            if isinstance(msg, AppendRequest):
                at = last_append.get((msg.frm, msg.to))
                if at is not None:
                    earlier = out[at]
                    assert isinstance(earlier, AppendRequest)
                    merged = merge_appends(earlier, msg, self.merge_appends_within)
                    if merged is not None:
                        out[at] = merged
                        self.stats.merged += 1
                        continue
                last_append[(msg.frm, msg.to)] = len(out)
            out.append(msg)
        return out

    def in_flight(self) -> int:
        return len(self._queue)

    def _push(self, msg: Message, now: int) -> None:
        assert len(self._queue) < MAX_IN_FLIGHT, "network queue bound exceeded"
        delay = self.rng.randint(0, self.faults.max_delay) if self.faults.max_delay else 0
        self._seq += 1
        heapq.heappush(self._queue, (now + 1 + delay, self._seq, msg))

    def _blocked(self, msg: Message) -> bool:
        if type(msg) in self._ignored:
            return True
        return bool(self._cut) and frozenset((msg.frm, msg.to)) in self._cut

    def _drop(self, msg: Message, *, cut: bool) -> None:
        if cut:
            self.stats.cut += 1
        else:
            self.stats.lost += 1
        if self.on_drop is not None:
            self.on_drop(msg)

    # --- partitions (raft-rs: cut, isolate, recover) ---

    def cut(self, a: str, b: str) -> None:
        self._cut.add(frozenset((a, b)))

    def isolate(self, node: str, nodes: Iterable[str]) -> None:
        for other in nodes:
            if other != node:
                self.cut(node, other)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between different groups; links inside a group stay as they were."""
        sets = [set(group) for group in groups]
        for i, left in enumerate(sets):
            for right in sets[i + 1 :]:
                for a in left:
                    for b in right:
                        self.cut(a, b)

    def heal(self) -> None:
        self._cut.clear()

    def is_partitioned(self) -> bool:
        return bool(self._cut)

    def ignore(self, kind: type) -> None:
        """Drop every message of this type (raft-rs's `ignore`), until `recover`."""
        self._ignored.add(kind)

    def recover(self) -> None:
        """Heal every cut and stop ignoring message types."""
        self._cut.clear()
        self._ignored.clear()

    def random_partition(self, nodes: Sequence[str]) -> str:
        """Replace the partition with one drawn from the rng; returns a description for the trace."""
        self.heal()
        mode = self.rng.choice(("isolate", "minority", "halves", "heal"))
        if mode == "isolate":
            node = self.rng.choice(nodes)
            self.isolate(node, nodes)
            return f"isolate {node}"
        if mode == "heal":
            return "heal"
        shuffled = list(nodes)
        self.rng.shuffle(shuffled)
        size = (len(nodes) - 1) // 2 if mode == "minority" else self.rng.randint(1, len(nodes) - 1)
        left, right = shuffled[:size], shuffled[size:]
        self.partition(left, right)
        return f"partition {sorted(left)} | {sorted(right)}"

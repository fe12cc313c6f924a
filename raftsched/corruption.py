"""Replica divergence detection (SPEC §6 promise 15), the part every node runs: hash the stored
state at the index of each corruption check, and keep the answers for the leader to collect.

The leader proposes a CheckHashCmd (`raftsched.scheduler.corruption`); every node, right after
applying it, opens a RocksDB iterator on each state family (`SchedulerState.views`: each reads the
state as of its creation, whatever is applied later; cheap) and hashes what they hold in slices of
at most SLICE_S, resting REST_S after each, so a large state neither stalls the loop nor takes
more than a quarter of it. What is hashed is what RocksDB returns, not what memory believes: a
record changed on disk behind the node's back changes its digest. The iterators pin the memtables
and files of that moment until the hash is done, a newer check drops it, or `close` cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from raftsched.state.machine import SchedulerState, StateDigest

log = logging.getLogger("raftsched.corruption")
# Every node hashes at once, on cores the whole cluster shares, so hashing yields often and takes
# at most a quarter of each node's loop; and a newer check drops an unfinished older one (`_point`).
# Before, in steps of 4,096 records (3-7 ms each) back to back, a leader transfer 2 s after the
# previous one (the new leader's first check) took 280-420 ms between acknowledged writes instead
# of 25 ms with 170,000 jobs stored, and 183 ms (median of 6) with 250,000, where each transfer
# left one more hash running. Now 35 ms (median of 7, 250,000 jobs; /work/notes/transfer_big.py,
# out of the tree). The price: a check takes about four times its CPU time.
STEP = 256  # records hashed between two looks at the clock
SLICE_S = 0.001  # hashing per event-loop turn, at most
REST_S = 0.003  # then this long for everything else
KEPT = 16  # answers kept, newest last


@dataclass(frozen=True, slots=True)
class StateHash:
    check_id: int
    index: int
    digest: bytes | None  # None while it is being computed
    seconds: float = 0.0


class StateHasher:
    """Hashes the state at every check point; owns its tasks (stopped by `close`)."""

    def __init__(self, sm: SchedulerState) -> None:
        self._sm = sm
        self._results: OrderedDict[int, StateHash] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        sm.on_hash_point = self._point

    def _point(self, check_id: int, index: int) -> None:
        """Called inside apply, right after the check's entry: take the view now, hash it later.
        A newer check supersedes one still being hashed, which is dropped: each leader checks soon
        after its election, and successive transfers left several hashes running at once on every
        node (the leader that asked for the older one has moved on; if it still waits, this node
        answers that it applied past the check without a digest, and it stops asking)."""
        views = self._sm.views()
        for task in self._tasks:
            task.cancel()
        for unfinished in [c for c, found in self._results.items() if found.digest is None]:
            del self._results[unfinished]
        self._results[check_id] = StateHash(check_id, index, None)
        while len(self._results) > KEPT:
            self._results.popitem(last=False)
        task = asyncio.get_running_loop().create_task(self._hash(check_id, index, StateDigest(views)),
                                                      name=f"state-hash-{check_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def _hash(self, check_id: int, index: int, digest: StateDigest) -> None:
        started = time.monotonic()
        turn_ends = time.perf_counter() + SLICE_S
        while not digest.step(STEP):
            if time.perf_counter() >= turn_ends:
                await asyncio.sleep(REST_S)
                turn_ends = time.perf_counter() + SLICE_S
        result = StateHash(check_id, index, digest.value(), time.monotonic() - started)
        if check_id in self._results:
            self._results[check_id] = result
        log.debug("state at index %d hashed in %.2f s", index, result.seconds)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("hashing the state failed", exc_info=task.exception())

    def get(self, check_id: int) -> StateHash | None:
        return self._results.get(check_id)

    def local_hash(self, check_id: int) -> tuple[int, bytes] | None:
        """(check index, digest) once hashed (raftsched.seams.Backups)."""
        found = self._results.get(check_id)
        return (found.index, found.digest) if found is not None and found.digest is not None else None

    def hashing_at(self, check_id: int) -> int | None:
        """The check's index while its hash is being computed, else None."""
        found = self._results.get(check_id)
        return found.index if found is not None and found.digest is None else None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

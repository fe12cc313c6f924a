"""How late the event loop runs: a task that asks to wake every INTERVAL and records how much later
it woke. Anything that holds the loop (a long apply, a RocksDB call holding the GIL, a big protobuf
parse) shows up as a stall. The node keeps the recent stalls for metrics and for the figures a
snapshot reports ("the longest stall while it was made", SPEC §7: snapshots must not stall the loop).
"""

from __future__ import annotations

import asyncio
import collections
import time

INTERVAL_S = 0.005
NOTABLE_S = 0.001  # lateness below this is timer noise, not a stall: not kept
KEPT = 4096


class LoopWatch:
    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        self._stalls: collections.deque[tuple[float, float]] = collections.deque(maxlen=KEPT)  # (when, seconds)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval)
            late = loop.time() - asked - self.interval
            if late >= NOTABLE_S:
                self._stalls.append((time.monotonic(), late))

    def longest_since(self, since: float) -> float:
        """The longest stall (seconds) since the monotonic time `since` (0.0: none of note)."""
        return max((late for when, late in self._stalls if when >= since), default=0.0)

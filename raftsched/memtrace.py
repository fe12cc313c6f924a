"""Where a node's Python memory goes, for an operator chasing growth (not for production use).

Start a node with RAFTSCHED_TRACEMALLOC=1; each SIGUSR2 logs the 25 allocation sites that grew the
most since the previous SIGUSR2 (the first one sets the baseline). Tracing costs CPU and memory.
"""

from __future__ import annotations

import logging
import tracemalloc

log = logging.getLogger("raftsched.memtrace")
TOP = 25


class MemoryTrace:
    def __init__(self) -> None:
        tracemalloc.start(8)
        self._baseline: tracemalloc.Snapshot | None = None

    def report(self) -> None:
        current = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        traced, peak = tracemalloc.get_traced_memory()
        if self._baseline is None:
            log.warning("memtrace: baseline taken: %.1f MB traced (peak %.1f MB)", traced / 1e6, peak / 1e6)
        else:
            lines = [f"memtrace: {traced / 1e6:.1f} MB traced (peak {peak / 1e6:.1f} MB); growth since then:"]
            for stat in current.compare_to(self._baseline, "traceback")[:TOP]:
                lines.append(f"  {stat.size_diff / 1e6:+.2f} MB ({stat.count_diff:+d} blocks)")
                lines.extend(f"      {frame}" for frame in stat.traceback.format()[-6:])
            log.warning("\n".join(lines))
        self._baseline = current

"""Does the state machine keep anything in memory per finished job? (issue 13's profile)

One process, one real NodeDB and SchedulerState, no Raft and no gRPC: batches of noop jobs are
submitted, assigned, started and finished directly through `apply`. At each size it prints the RSS,
the malloc heap and anonymous mappings, and RocksDB's own memory figures. Python allocation tracing
starts at the first size; at the next one it prints what was allocated since and is still alive,
which is what the state machine keeps per job.

    .venv/bin/python scripts/bench/sm_memory.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import tracemalloc
from pathlib import Path

from raftsched.state import commands as c
from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState
from raftsched.storage.db import NodeDB
from raftsched.v1 import commands_pb2, jobs_pb2

BATCH = 1000
T0 = 1_700_000_000_000


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def heap_and_anon_mb() -> tuple[float, float]:
    """Resident MB of the brk heap and of anonymous mappings (where glibc puts thread arenas)."""
    heap = anon = 0
    mapping = ""
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5:
                mapping = parts[5] if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                heap += int(parts[1]) if mapping == "[heap]" else 0
                anon += int(parts[1]) if mapping == "[anon]" else 0
    return round(heap / 1024, 1), round(anon / 1024, 1)


class Driver:
    def __init__(self, state: SchedulerState) -> None:
        self.state = state
        self.index = 0

    def run(self, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
        self.index += 1
        result = self.state.apply([(self.index, c.encode(cmd, time_ms=T0 + self.index))])[0]
        assert result is not None
        return result

    def finish_batch(self) -> None:
        submitted = self.run(c.submit(*[jobs_pb2.JobSpec(handler="noop") for _ in range(BATCH)])).submitted
        ids = [item.job.id for item in submitted]
        self.run(c.assign([(job_id, 1, "e1") for job_id in ids]))
        self.run(c.started("e1", [(job_id, 1) for job_id in ids]))
        self.run(c.finished("e1", [c.finished_item(job_id, 1, jobs_pb2.ATTEMPT_END_SUCCEEDED) for job_id in ids]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="finished-job counts to report at")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="sm-memory-") as tmp:
        db = NodeDB(Path(tmp) / "db", column_families=COLUMN_FAMILIES)
        try:
            driver = Driver(SchedulerState(db))
            driver.run(c.executor_up("e1", slots=BATCH))
            done = 0
            for size in sizes:
                while done < size:
                    driver.finish_batch()
                    done += BATCH
                gc.collect()
                rocksdb = {k: round(v / 1e6, 1) for k, v in db.memory_bytes().items()}
                print(f"{done} finished: rss {rss_mb():.1f} MB, heap/anon {heap_and_anon_mb()} MB, "
                      f"rocksdb MB {rocksdb}")
                if tracemalloc.is_tracing():
                    alive = tracemalloc.get_traced_memory()[0] / 1e6
                    print(f"  Python memory allocated since the previous size and still alive: {alive:.2f} MB")
                    for stat in tracemalloc.take_snapshot().statistics("lineno")[:5]:
                        print(f"    {stat}")
                    tracemalloc.stop()
                tracemalloc.start(8)
        finally:
            db.close()


if __name__ == "__main__":
    main()

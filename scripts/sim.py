"""`make sim SEEDS=N`: N seeds of the Raft simulation and N of the scheduler simulation, one
summary line each (`raft: N schedules, V violations`, `scheduler: N schedules, V violations`);
exits non-zero on any violation, after printing each failing seed's replay command."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.raft.sim.schedule import SimulationFailure as RaftFailure
from tests.raft.sim.schedule import run_schedule as run_raft
from tests.scheduler.sim.schedule import SimulationFailure as SchedFailure
from tests.scheduler.sim.schedule import run_schedule as run_sched


def sweep(name: str, seeds: range, run: Callable[[int], object], failure: type[AssertionError]) -> int:
    started = time.perf_counter()
    violations = 0
    for seed in seeds:
        try:
            run(seed)
        except failure as err:
            violations += 1
            first = str(err).splitlines()
            replay = next((line for line in first if line.startswith("reproduce:")), "")
            print(f"{name} seed {seed}: {first[0][:300]}\n  {replay}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"{name}: {len(seeds)} schedules, {violations} violations")
    print(f"  ({elapsed:.1f} s, {len(seeds) / elapsed:.1f} schedules/s)", file=sys.stderr)
    return violations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--base", type=int, default=0)
    args = parser.parse_args()
    if args.seeds <= 0:
        parser.error(f"--seeds must be positive, got {args.seeds}")
    logging.disable(logging.CRITICAL)
    seeds = range(args.base, args.base + args.seeds)
    bad = sweep("raft", seeds, lambda s: run_raft(s, 3 if s % 4 else 5), RaftFailure)
    bad += sweep("scheduler", seeds, run_sched, SchedFailure)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

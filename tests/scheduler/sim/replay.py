"""Replay simulated schedules of the scheduling layer: `python -m tests.scheduler.sim.replay --seed N`.

Run from the repository root. `--count C` runs seeds N..N+C-1; `--bug NAME` plants one bug of
`raftsched.scheduler.bugs`; `--verbose` prints the trace as it happens.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from raftsched.scheduler.bugs import Bugs

from .schedule import SimulationFailure, run_schedule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--bug", default="")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.verbose:
        logging.disable(logging.CRITICAL)
    started = time.perf_counter()
    for seed in range(args.seed, args.seed + args.count):
        try:
            outcome = run_schedule(seed, bugs=Bugs.of(args.bug), bug=args.bug, verbose=args.verbose)
        except SimulationFailure as failure:
            print(failure, file=sys.stderr)
            return 1
        if args.count == 1:
            print(outcome)
    print(f"{args.count} schedule(s) passed in {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

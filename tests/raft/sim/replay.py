"""Replay one simulated schedule from its seed: `python -m tests.raft.sim.replay --seed N --nodes 3`.

Run from the repository root. `--verbose` prints every event of the trace as it happens; `--bug`
replays with one of the planted bugs of `tests/raft/test_teeth.py`.
"""

from __future__ import annotations

import argparse
import sys
import time

from .schedule import LIVENESS_TICKS, SAFETY_TICKS, SimulationFailure, run_schedule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--nodes", type=int, choices=(3, 5), default=3)
    parser.add_argument("--safety-ticks", type=int, default=SAFETY_TICKS)
    parser.add_argument("--liveness-ticks", type=int, default=LIVENESS_TICKS)
    parser.add_argument("--count", type=int, default=1, help="run seeds seed..seed+count-1")
    parser.add_argument("--bug", default="", help="plant a bug from tests/raft/bugs.py")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--merge-appends-within", type=int, default=0,
                        help="merge appends due together up to this many bytes, as the transport does")
    parser.add_argument("--membership", action="store_true", help="a schedule with membership changes")
    args = parser.parse_args(argv)
    factory = None
    if args.bug:
        from ..bugs import BUGS
        from ..member_bugs import MEMBER_BUGS

        factory = {**BUGS, **MEMBER_BUGS}[args.bug]
    if args.membership:
        return _replay_membership(args, factory)
    started = time.perf_counter()
    for seed in range(args.seed, args.seed + args.count):
        try:
            outcome = run_schedule(
                seed, args.nodes, safety_ticks=args.safety_ticks, liveness_ticks=args.liveness_ticks,
                core_factory=factory, bug=args.bug, verbose=args.verbose,
                merge_appends_within=args.merge_appends_within,
            )  # fmt: skip
        except SimulationFailure as failure:
            print(failure, file=sys.stderr)
            return 1
        if args.count == 1 or args.verbose:
            print(outcome)
    print(f"{args.count} schedule(s) passed in {time.perf_counter() - started:.2f}s")
    return 0


def _replay_membership(args: argparse.Namespace, factory: object) -> int:
    from .member_schedule import LIVENESS_TICKS as M_LIVENESS
    from .member_schedule import SAFETY_TICKS as M_SAFETY
    from .member_schedule import run_member_schedule

    safety = M_SAFETY if args.safety_ticks == SAFETY_TICKS else args.safety_ticks
    liveness = M_LIVENESS if args.liveness_ticks == LIVENESS_TICKS else args.liveness_ticks
    started = time.perf_counter()
    for seed in range(args.seed, args.seed + args.count):
        try:
            outcome = run_member_schedule(
                seed, args.nodes, safety_ticks=safety, liveness_ticks=liveness,
                core_factory=factory, bug=args.bug, verbose=args.verbose,  # type: ignore[arg-type]
            )  # fmt: skip
        except SimulationFailure as failure:
            print(failure, file=sys.stderr)
            return 1
        if args.count == 1 or args.verbose:
            print(outcome)
    print(f"{args.count} membership schedule(s) passed in {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

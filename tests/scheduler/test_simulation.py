"""The deterministic simulation of the scheduling layer (issue 15): seeded schedules of several
scheduler nodes (real Raft core, real state machine, real SchedulerCore), simulated executors and
time, a safety phase under faults then a liveness phase; the checkers of `sim/checkers.py` run at
every apply, task start and step.

The default sweep is sized for `make test`'s budget; RAFTSCHED_SCHED_SIM_SEEDS=50000 (and
RAFTSCHED_SCHED_SIM_BASE) explores further, as does `make sim SEEDS=N`. A failure's message says
how to replay it: `.venv/bin/python -m tests.scheduler.sim.replay --seed N --verbose`.
"""

from __future__ import annotations

import logging
import os
import time

import pytest

from .sim.schedule import run_schedule

SEEDS = int(os.environ.get("RAFTSCHED_SCHED_SIM_SEEDS", "2000"))  # issue 15: at least 2,000 per make test
BASE = int(os.environ.get("RAFTSCHED_SCHED_SIM_BASE", "0"))
# Seeds that once failed: 33 (an executor left DOWN while connected) and 133 (a timed-out attempt's
# retry beside it) in the real code, the others in the simulation itself (see docs/scheduler-core.md).
REGRESSIONS = [33, 53, 71, 133, 234, 253]


@pytest.fixture(autouse=True)
def _quiet() -> object:
    logging.disable(logging.CRITICAL)
    yield None
    logging.disable(logging.NOTSET)


CHUNKS = 40  # the sweep is split so that the test workers (pytest-xdist) share its parts evenly to the end


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seed_sweep(chunk: int) -> None:
    """Part `chunk` of CHUNKS of the seeds BASE..BASE+SEEDS-1 (every CHUNKS-th seed)."""
    started = time.perf_counter()
    jobs = fired = 0
    seeds = range(BASE + chunk, BASE + SEEDS, CHUNKS)
    for seed in seeds:
        outcome = run_schedule(seed)
        jobs += outcome.jobs
        fired += outcome.fired
    elapsed = time.perf_counter() - started
    print(f"\nscheduler simulation: {len(seeds)} schedules (seeds {BASE}..{BASE + SEEDS - 1}, part {chunk + 1} of "
          f"{CHUNKS}), {jobs} acknowledged jobs, {fired} fire times, {elapsed:.1f}s")


@pytest.mark.parametrize("seed", REGRESSIONS)
def test_regression(seed: int) -> None:
    run_schedule(seed)


def test_replay_is_exact() -> None:
    """One seed, one run: everything drawn from the seed (a failure must replay)."""
    assert run_schedule(7) == run_schedule(7)

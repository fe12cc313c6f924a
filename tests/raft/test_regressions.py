"""Seeds that once failed, replayed on every run (STYLE.md: failing seeds become regression tests).

Add a failing seed here as `(seed, nodes, "what it found")`; replay it alone with
`.venv/bin/python -m tests.raft.sim.replay --seed SEED --nodes NODES --verbose`.
"""

from __future__ import annotations

import pytest

from .sim.schedule import run_schedule

SEEDS: list[tuple[int, int, str]] = [
    (14, 3, "runs depended on PYTHONHASHSEED (the core walks peers in set order)"),
    (269, 3, "a snapshot streamed to a crashed node was never reported failed: leader stuck"),
    (409, 3, "a ReadIndex dropped by a step-down looked pending to the harness in a later term"),
    (68, 5, "the same, with 5 nodes and leadership transfers"),
]


@pytest.mark.parametrize(("seed", "nodes", "found"), SEEDS, ids=[f"seed{s}-n{n}" for s, n, _ in SEEDS])
def test_regression_seed(seed: int, nodes: int, found: str) -> None:
    run_schedule(seed, nodes)

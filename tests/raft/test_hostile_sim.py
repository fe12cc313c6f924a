"""The hostile-peer fault (issue 14, `sim/hostile.py`): every message it injects is refused and
changes nothing, so a hostile run is the honest run of the same seed plus refusals.

The sweeps of `test_simulation.py` and `test_membership_sim.py` draw the fault from each seed (half
the seeds, at a rate and a mix of forged member names also drawn); this file checks the fault
itself: that it is exercised, that it cannot change a run, and that the rule-based machine can
inject it too. Replay a seed with `.venv/bin/python -m tests.raft.sim.replay --seed N --verbose`.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter

from raftsched.raft.refusals import Reason

from .sim.cluster import Cluster, SimConfig
from .sim.hostile import ATTACKS, NO_HOSTILITY, HostilePeer, Hostility
from .sim.schedule import Plan, run_safety_phase, run_schedule

SEEDS = 60


def test_hostility_changes_nothing_but_the_refusal_counts() -> None:
    """The same seed with and without a hostile peer: same proposals, acknowledgements, reads,
    crashes, elections and the very same number of network messages."""
    started = time.perf_counter()
    injected = 0
    for seed in range(SEEDS):
        nodes = 5 if seed % 4 == 0 else 3
        honest = run_schedule(seed, nodes, hostility=NO_HOSTILITY)
        hostile = run_schedule(seed, nodes, hostility=Hostility(rate=1.0, forged=(seed % 5) / 4))
        assert hostile.hostile > 0
        assert dataclasses.replace(hostile, hostile=0) == honest, f"seed {seed}: hostility changed the run"
        injected += hostile.hostile
    print(f"\\n{SEEDS} seeds run twice; {injected} hostile messages refused, {time.perf_counter() - started:.1f}s")


def test_every_attack_and_every_core_refusal_reason_occurs() -> None:
    """Over a few hostile schedules, each attack is made and refused for each reason the core has."""
    sent: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for seed in range(20):
        plan = dataclasses.replace(Plan.draw(seed, 3), hostility=Hostility(rate=1.0))
        cluster = Cluster(3, seed, faults=plan.faults, config=plan.config)
        cluster.hostile = plan.hostile_peer()
        run_safety_phase(cluster, plan, 200)
        assert cluster.hostile is not None
        sent.update(cluster.hostile.sent)
        refused.update(cluster.hostile.refused)
    assert set(sent) == {name for name, _ in ATTACKS}
    transport_only = {Reason.UNPARSABLE, Reason.FROM_NOT_CERTIFICATE, Reason.SENDER_CHANGED}
    assert set(refused) == {r.value for r in Reason} - {r.value for r in transport_only}, refused


def test_the_swarm_draws_the_fault_for_about_half_the_seeds() -> None:
    drawn = [Plan.draw(seed, 3).hostility for seed in range(400)]
    hostile = [h for h in drawn if h.rate]
    assert 150 < len(hostile) < 250
    assert all(0 < h.rate <= 1.0 for h in hostile)
    assert Plan.draw(7, 3) == Plan.draw(7, 3)  # one seed drives everything


def test_a_hostile_peer_alone_cannot_elect_or_depose() -> None:
    """No faults, no clients: a cluster under a stream of hostile messages elects one leader and
    keeps it, in the term it was elected in."""
    cluster = Cluster(3, seed=11, config=SimConfig())
    cluster.hostile = HostilePeer(random.Random(11), Hostility(rate=3.0, forged=0.7))
    cluster.run(60)
    leader = cluster.leader()
    assert leader is not None
    term = cluster.core(leader).term
    cluster.run(300)
    assert cluster.leader() == leader and cluster.core(leader).term == term
    assert sum(cluster.hostile.sent.values()) > 900

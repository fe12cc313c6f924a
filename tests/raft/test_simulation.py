"""The deterministic simulation: thousands of seeded schedules, each a safety phase under faults
then a liveness phase, with every checker of `sim/checkers.py` applied at every step.

Three ways in:
  * `test_seed_sweep_*`: a plain loop over seeds 0..N (cheapest per schedule; CI explores 2,000),
    in CHUNKS parts so that `make test`'s workers share them. Set RAFTSCHED_SIM_SEEDS=20000 (and
    RAFTSCHED_SIM_BASE=...) to explore further.
  * `test_random_seeds`: hypothesis draws seeds from the whole 32-bit space (derandomized, so a
    run is reproducible; a failure prints the seed and the replay command).
  * `ClusterMachine`: hypothesis drives the cluster rule by rule (tick, deliver, propose, read,
    partition, crash, restart, compact, transfer, hostile messages) and shrinks a failing schedule.

Half the seeds also draw the hostile-peer fault (issue 14, `sim/hostile.py`): messages every node
must refuse without effect, injected among the rest.

A failure's message says how to replay it: `.venv/bin/python -m tests.raft.sim.replay --seed N ...`.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from .sim import checkers as chk
from .sim.cluster import Cluster, CoreFactory, CrashPoint, SimConfig
from .sim.hostile import HostilePeer, Hostility
from .sim.schedule import run_liveness_phase, run_schedule

SEEDS_3 = int(os.environ.get("RAFTSCHED_SIM_SEEDS", "1500"))
SEEDS_5 = max(SEEDS_3 // 3, 1)
BASE = int(os.environ.get("RAFTSCHED_SIM_BASE", "0"))
CHUNKS = 6  # each sweep is split so that the test workers (pytest-xdist) run its parts side by side


def sweep(nodes: int, count: int, chunk: int) -> None:
    """Part `chunk` of CHUNKS of the seeds BASE..BASE+count-1 (every CHUNKS-th seed)."""
    started = time.perf_counter()
    acked = 0
    seeds = range(BASE + chunk, BASE + count, CHUNKS)
    for seed in seeds:
        acked += run_schedule(seed, nodes).acked
    elapsed = time.perf_counter() - started
    print(f"\nsimulation: {len(seeds)} schedules of {nodes} nodes (seeds {BASE}..{BASE + count - 1}, part "
          f"{chunk + 1} of {CHUNKS}), {acked} acknowledged proposals, {elapsed:.1f}s")  # fmt: skip


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seed_sweep_3_nodes(chunk: int) -> None:
    sweep(3, SEEDS_3, chunk)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seed_sweep_5_nodes(chunk: int) -> None:
    sweep(5, SEEDS_5, chunk)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1), nodes=st.sampled_from([3, 5]))
def test_random_seeds(seed: int, nodes: int) -> None:
    run_schedule(seed, nodes)


@pytest.mark.parametrize("within", [200, 1 << 20])
def test_seeds_with_appends_merged_as_the_transport_does(within: int) -> None:
    """The transport merges a peer's queued appends (raftsched.raft.appends); here every append
    due together with the one it continues is merged (up to `within` bytes), under every fault
    of each seed's plan. A failure names its seed and the replay command."""
    outcomes = [run_schedule(seed, nodes, merge_appends_within=within)
                for nodes, seeds in ((3, range(BASE, BASE + 40)), (5, range(BASE, BASE + 12))) for seed in seeds]
    merged = sum(o.merged for o in outcomes)
    print(f"\nsimulation with merged appends (within {within} bytes): {len(outcomes)} schedules, "
          f"{merged} appends merged, {sum(o.acked for o in outcomes)} acknowledged proposals")
    assert merged > 0, "no append was merged: the test would prove nothing"


# --- hypothesis drives the cluster rule by rule ----------------------------------------------

NODE = st.sampled_from(["n1", "n2", "n3"])


class ClusterMachine(RuleBasedStateMachine):
    """Faults chosen by hypothesis, one rule at a time; the checkers run inside every rule."""

    cluster: Cluster
    core_factory: CoreFactory | None = None  # test_teeth.py plants a bug here

    @initialize(seed=st.integers(0, 2**32 - 1), pre_vote=st.booleans(), check_quorum=st.booleans())
    def start(self, seed: int, pre_vote: bool, check_quorum: bool) -> None:
        config = SimConfig(max_msg_bytes=128, pre_vote=pre_vote, check_quorum=check_quorum)
        self.cluster = Cluster(3, seed, config=config, core_factory=self.core_factory)

    @rule(ticks=st.integers(1, 25))
    def tick(self, ticks: int) -> None:
        self.cluster.run(ticks)

    @rule(node=NODE)
    def campaign(self, node: str) -> None:
        if self.cluster.nodes[node].alive:
            self.cluster.core(node).campaign()

    @rule(node=NODE, count=st.integers(1, 3))
    def propose(self, node: str, count: int) -> None:
        self.cluster.propose(node, count)

    @rule()
    def propose_at_leader(self) -> None:
        leader = self.cluster.leader()
        if leader is not None:
            self.cluster.propose(leader)

    @rule(node=NODE)
    def read(self, node: str) -> None:
        self.cluster.read(node)

    @rule(node=NODE)
    def isolate(self, node: str) -> None:
        self.cluster.net.heal()
        self.cluster.net.isolate(node, self.cluster.ids)

    @rule(a=NODE, b=NODE)
    def cut(self, a: str, b: str) -> None:
        if a != b:
            self.cluster.net.cut(a, b)

    @rule()
    def heal(self) -> None:
        self.cluster.net.heal()

    @precondition(lambda self: len(self.cluster.live()) > 0)
    @rule(data=st.data(), point=st.sampled_from(list(CrashPoint)))
    def crash(self, data: st.DataObject, point: CrashPoint) -> None:
        self.cluster.crash(data.draw(st.sampled_from(self.cluster.live())), point)

    @precondition(lambda self: len(self.cluster.down()) > 0)
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        self.cluster.start(data.draw(st.sampled_from(self.cluster.down())))

    @rule(node=NODE)
    def compact(self, node: str) -> None:
        if self.cluster.nodes[node].alive:
            self.cluster.compact(node)

    @rule(to=NODE)
    def transfer(self, to: str) -> None:
        leader = self.cluster.leader()
        if leader is not None and leader != to:
            self.cluster.transfer(leader, to)

    @rule(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 5))
    def hostile(self, seed: int, count: int) -> None:
        """Hostile messages (issue 14) into live nodes: each must be refused without effect."""
        peer = HostilePeer(random.Random(seed), Hostility(rate=count, forged=0.5))
        peer.inject({n: self.cluster.core(n) for n in self.cluster.live()}, self.cluster.ids)

    @invariant()
    def time_passes(self) -> None:
        """The world moves on a tick after every rule (so schedules reach elections quickly)."""
        if hasattr(self, "cluster"):
            self.cluster.step()

    @invariant()
    def logs_match(self) -> None:
        nodes = self.cluster.nodes.values()
        chk.check_logs_match_full({n.id: n.storage.log for n in nodes if not n.storage.snapshot.index})

    @invariant()
    def applied_prefixes_agree(self) -> None:
        chk.check_applied_prefixes_full({n.id: n.state for n in self.cluster.nodes.values()})

    def teardown(self) -> None:
        if hasattr(self, "cluster"):
            run_liveness_phase(self.cluster, 400)


ClusterMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_cluster_machine = ClusterMachine.TestCase

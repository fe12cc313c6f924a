"""One simulated schedule with membership changes: the faults and clients of `schedule.py`, plus an
operator who adds learners, promotes them, removes members (the leader too) and re-adds removed
ids, all drawn from the seed. Then the liveness phase: heal, stop the removed nodes, and the final
configuration's voters must elect a leader and every member must apply everything acknowledged.

Replay: `.venv/bin/python -m tests.raft.sim.replay --membership --seed N --verbose`.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from raftsched.raft.config import ChangeKind
from raftsched.raft.messages import Role

from .cluster import CoreFactory
from .membership import MemberCluster, change
from .network import NO_FAULTS
from .schedule import LivenessGoal, Plan, SimulationFailure, drive_clients, inject_faults

SAFETY_TICKS = 300
LIVENESS_TICKS = 500
REPLAY = ".venv/bin/python -m tests.raft.sim.replay --membership --seed {seed} --nodes {nodes}"


@dataclass(frozen=True, slots=True)
class Operator:
    """How often the operator changes the membership (per tick), and how it chooses."""

    change_rate: float
    remove_leader: float  # when removing, the chance that the leader is the one removed
    wait_caught_up: float  # the chance a promotion waits for the learner to catch up (as the CLI does)
    decommission_rate: float  # per tick, per node whose removal is committed

    @classmethod
    def draw(cls, rng: random.Random) -> Operator:
        return cls(
            change_rate=rng.uniform(0.02, 0.12),
            remove_leader=rng.choice((0.0, 0.2, 0.5)),
            wait_caught_up=rng.choice((0.0, 0.5, 1.0)),
            decommission_rate=rng.choice((0.0, 0.02, 0.2)),
        )


@dataclass(frozen=True, slots=True)
class MemberPlan:
    base: Plan
    operator: Operator

    @classmethod
    def draw(cls, seed: int, nodes: int) -> MemberPlan:
        rng = random.Random(seed ^ 0xC0FF1C)
        return cls(Plan.draw(seed, nodes), Operator.draw(rng))


@dataclass(frozen=True, slots=True)
class MemberOutcome:
    seed: int
    ticks: int
    acked: int
    crashes: int
    snapshots_installed: int
    final_config: str
    changes: dict[str, int]


class MemberSimulationFailure(SimulationFailure):
    def __init__(self, plan: MemberPlan, cluster: MemberCluster, phase: str, cause: AssertionError, bug: str) -> None:
        super().__init__(plan.base, cluster, phase, cause, bug)
        self.cluster = cluster
        self.phase = phase
        replay = REPLAY.format(seed=plan.base.seed, nodes=plan.base.nodes) + (f" --bug {bug}" if bug else "")
        self.args = (
            f"{self.args[0]}\nmembership reproduce: {replay} --verbose\n"
            f'or add ({plan.base.seed}, "...") to MEMBER_SEEDS in tests/raft/test_membership_sim.py\n'
            f"operator: {plan.operator}\nchanges: {dict(cluster.member_counters)}",
        )


def run_member_schedule(
    seed: int,
    nodes: int = 3,
    *,
    safety_ticks: int = SAFETY_TICKS,
    liveness_ticks: int = LIVENESS_TICKS,
    core_factory: CoreFactory | None = None,
    bug: str = "",
    verbose: bool = False,
) -> MemberOutcome:
    plan = MemberPlan.draw(seed, nodes)
    base = plan.base
    cluster = MemberCluster(
        nodes, seed, faults=base.faults, config=base.config, core_factory=core_factory, verbose=verbose
    )
    cluster.hostile = base.hostile_peer()
    phase = "safety"
    try:
        for _ in range(safety_ticks):
            inject_faults(cluster, base.faults)
            drive_clients(cluster, base.workload)
            drive_operator(cluster, plan.operator)
            cluster.step()
        phase = "liveness"
        run_member_liveness(cluster, liveness_ticks)
    except AssertionError as cause:
        raise MemberSimulationFailure(plan, cluster, phase, cause, bug) from cause
    conf = cluster.committed_config()
    final = f"voters={sorted(conf.voters)} learners={sorted(conf.learners)}"
    c = cluster.counters
    return MemberOutcome(seed, cluster.now, c.acked, c.crashes, c.snapshots_installed, final,
                         dict(cluster.member_counters))  # fmt: skip


def drive_operator(cluster: MemberCluster, op: Operator) -> None:
    """At the operator's rate, propose one change at the leader (sometimes at another node)."""
    rng = cluster.rng
    cluster.maybe_join()
    if op.decommission_rate:
        cluster.maybe_decommission(op.decommission_rate)
    if rng.random() >= op.change_rate:
        return
    leader = cluster.leader()
    live = cluster.live()
    if not live:
        return
    at = leader if leader is not None and rng.random() < 0.9 else rng.choice(live)
    conf = cluster.core(at).conf
    kind = _pick_kind(rng, conf.voters, conf.learners, len(cluster.ids))
    if kind is ChangeKind.ADD_LEARNER:
        target = rng.choice(sorted(set(cluster.ids) - conf.members()))
    elif kind is ChangeKind.PROMOTE:
        target = rng.choice(sorted(conf.learners))
        if rng.random() < op.wait_caught_up and not _caught_up(cluster, at, target):
            return
    else:
        voters = sorted(conf.voters)
        removable = sorted(conf.members()) if len(voters) > 1 else sorted(conf.learners)
        target = at if at in removable and rng.random() < op.remove_leader else rng.choice(removable)
    cluster.propose_config(at, change(kind, target))


def _pick_kind(rng: random.Random, voters: frozenset[str], learners: frozenset[str], pool: int) -> ChangeKind:
    can_add = len(voters) + len(learners) < pool
    weights = {
        ChangeKind.ADD_LEARNER: (3 if len(voters) < 3 else 1) if can_add else 0,
        ChangeKind.PROMOTE: (3 if len(voters) < 4 else 1) if learners else 0,
        ChangeKind.REMOVE: 3 if len(voters) > 3 else 1 if len(voters) > 1 or learners else 0,
    }
    kinds = [k for k, w in weights.items() if w]
    return rng.choices(kinds, weights=[weights[k] for k in kinds])[0]


def _caught_up(cluster: MemberCluster, at: str, learner: str) -> bool:
    core = cluster.core(at)
    progress = core.progress.get(learner)
    return progress is not None and progress.match >= core.commit


def run_member_liveness(cluster: MemberCluster, ticks: int) -> None:
    """Heal, stop proposing changes, restart every member and stop every removed node; then a
    leader of the final configuration must serve a fresh proposal and a read, and every member of
    that configuration must apply everything acknowledged, within `ticks`."""
    cluster.net.faults = NO_FAULTS
    cluster.net.recover()
    cluster.allow_config = False
    cluster.log("liveness phase: healed, no loss, members up, removed nodes stopped")
    for node in cluster.nodes.values():
        node.crash_point = None
    cluster.liveness_start = cluster.history.max_applied()
    goal = MemberLivenessGoal(cluster)
    for _ in range(ticks):
        cluster.maybe_join()
        cluster.maybe_decommission()
        for node in cluster.down():
            cluster.start(node)
        goal.nudge()
        cluster.step()
        if goal.reached():
            return
    raise AssertionError(f"liveness: not converged within {ticks} ticks: {goal.status()}")


class MemberLivenessGoal(LivenessGoal):
    cluster: MemberCluster

    def reached(self) -> bool:
        final = self.final_index()
        if not final or self.read_ctx not in self.cluster.served_reads:
            return False
        leader = self.cluster.leader()
        if leader is None:
            return False
        members = self.cluster.core(leader).conf.members()
        if not members <= self.cluster.provisioned:
            return False
        nodes = [self.cluster.nodes[m] for m in members]
        return all(n.core is not None and n.applied >= final for n in nodes)

    def status(self) -> str:
        leader = self.cluster.leader()
        conf = self.cluster.core(leader).conf if leader else None
        return f"leader config {conf}, provisioned {sorted(self.cluster.provisioned)}\n{super().status()}"


def summarize(outcomes: list[MemberOutcome]) -> Counter[str]:
    total: Counter[str] = Counter()
    for outcome in outcomes:
        total.update(outcome.changes)
        total["acked"] += outcome.acked
        total["snapshots installed"] += outcome.snapshots_installed
    return total


__all__ = ["MemberOutcome", "MemberSimulationFailure", "Role", "run_member_schedule", "summarize"]


# --- product bugs the simulation found, recognised so that a sweep can go on past them ----------

STUCK_SELF_REMOVAL = "stuck self-removal"


def known_bug(failure: MemberSimulationFailure) -> str:
    """The name of the known product bug this failure shows, or "".

    stuck self-removal: a leader appended its own REMOVE, then lost leadership before the entry
    committed (check-quorum, or a crash). It now holds the longest log but, no longer a voter in
    its own latest configuration, never campaigns; the remaining voter(s), whose configuration
    still counts it, cannot win without its vote, which it refuses them (their log is behind).
    No leader is ever elected again. The thesis (§4.2.2) has such a server keep starting elections
    until the new configuration commits; the core's `_promotable` forbids it.
    """
    cluster = failure.cluster
    if failure.phase != "liveness" or cluster.leader() is not None:
        return ""
    committed = cluster.committed_config()
    for node_id in cluster.live():
        conf = cluster.core(node_id).conf
        if node_id in committed.voters and node_id not in conf.voters and node_id not in conf.learners:
            return STUCK_SELF_REMOVAL
    return ""

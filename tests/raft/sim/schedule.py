"""One simulated schedule, VOPR style: a seed, a safety phase under faults, then a liveness phase.

Everything (fault mix, core configuration, workload, every message's fate, every core's rng) is
drawn from the seed, so `run_schedule(seed, nodes)` replays a run exactly. A violation raises
`SimulationFailure`, whose message names the seed and the command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from raftsched.raft.messages import Role

from .cluster import Cluster, CoreFactory, CrashPoint, SimConfig
from .hostile import NO_HOSTILITY, HostilePeer, Hostility
from .network import NO_FAULTS, Faults

SAFETY_TICKS = 300
LIVENESS_TICKS = 400
REPLAY = ".venv/bin/python -m tests.raft.sim.replay --seed {seed} --nodes {nodes}"


@dataclass(frozen=True, slots=True)
class Workload:
    """How busy the clients are; rates are per tick."""

    propose_rate: float = 0.3
    max_batch: int = 3
    read_rate: float = 0.05
    transfer_rate: float = 0.0

    @classmethod
    def draw(cls, rng: random.Random) -> Workload:
        return cls(
            propose_rate=rng.uniform(0.05, 0.6),
            max_batch=rng.choice((1, 1, 2, 4)),
            read_rate=rng.choice((0.0, 0.02, 0.1)),
            transfer_rate=rng.choice((0.0, 0.0, 0.005, 0.02)),
        )


def draw_config(rng: random.Random) -> SimConfig:
    return SimConfig(
        election_ticks=10,
        heartbeat_ticks=rng.choice((1, 2)),
        max_inflight=rng.choice((1, 2, 8, 64)),
        max_msg_bytes=rng.choice((64, 256, 1 << 20)),
        pre_vote=rng.random() < 0.7,
        check_quorum=rng.random() < 0.7,
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a seed decides before the first tick."""

    seed: int
    nodes: int
    faults: Faults
    workload: Workload
    config: SimConfig
    hostility: Hostility = NO_HOSTILITY

    @classmethod
    def draw(cls, seed: int, nodes: int) -> Plan:
        rng = random.Random(seed ^ 0x5EED)
        # The hostile peer draws from its own stream, so adding it left every other draw as it was.
        hostility = Hostility.draw(random.Random(seed ^ 0xB4D))
        return cls(seed, nodes, Faults.draw(rng), Workload.draw(rng), draw_config(rng), hostility)

    def hostile_peer(self) -> HostilePeer | None:
        if not self.hostility.rate:
            return None
        return HostilePeer(random.Random(self.seed ^ 0xB4D5EED), self.hostility)


@dataclass(frozen=True, slots=True)
class Outcome:
    seed: int
    nodes: int
    ticks: int
    proposed: int
    acked: int
    reads: int
    crashes: int
    elections: int
    messages: int
    hostile: int = 0  # hostile messages injected (every one refused)
    merged: int = 0  # appends delivered merged into the one before (merge_appends_within)


class SimulationFailure(AssertionError):
    def __init__(self, plan: Plan, cluster: Cluster, phase: str, cause: AssertionError, bug: str,
                 merge_appends_within: int = 0) -> None:
        replay = REPLAY.format(seed=plan.seed, nodes=plan.nodes) + (f" --bug {bug}" if bug else "")
        if merge_appends_within:
            replay += f" --merge-appends-within {merge_appends_within}"
        trace = "\n".join(cluster.trace)
        super().__init__(
            f"{cause}\n\nseed={plan.seed} nodes={plan.nodes} phase={phase} tick={cluster.now}\n"
            f"reproduce: {replay} --verbose\n"
            f"or add {plan.seed} (nodes={plan.nodes}) to SEEDS in tests/raft/test_regressions.py\n"
            f"plan: {plan}\nnodes:\n{cluster.describe()}\nlast events:\n{trace}"
        )
        self.seed = plan.seed


def run_schedule(
    seed: int,
    nodes: int,
    *,
    safety_ticks: int = SAFETY_TICKS,
    liveness_ticks: int = LIVENESS_TICKS,
    core_factory: CoreFactory | None = None,
    bug: str = "",
    verbose: bool = False,
    hostility: Hostility | None = None,
    merge_appends_within: int = 0,
) -> Outcome:
    """One schedule; `hostility` replaces the plan's hostile-peer fault (tests compare runs)."""
    plan = Plan.draw(seed, nodes)
    if hostility is not None:
        plan = dataclasses.replace(plan, hostility=hostility)
    cluster = Cluster(nodes, seed, faults=plan.faults, config=plan.config, core_factory=core_factory, verbose=verbose,
                      merge_appends_within=merge_appends_within)
    cluster.hostile = plan.hostile_peer()
    phase = "safety"
    try:
        run_safety_phase(cluster, plan, safety_ticks)
        phase = "liveness"
        run_liveness_phase(cluster, liveness_ticks)
    except AssertionError as cause:
        raise SimulationFailure(plan, cluster, phase, cause, bug, merge_appends_within) from cause
    c = cluster.counters
    hostile = sum(cluster.hostile.sent.values()) if cluster.hostile else 0
    return Outcome(
        seed, nodes, cluster.now, c.proposed, c.acked, c.reads_served, c.crashes,
        len(cluster.history.leaders), cluster.net.stats.sent, hostile, cluster.net.stats.merged,
    )  # fmt: skip


# --- the safety phase: faults and clients at the rates the plan drew --------------------------


def run_safety_phase(cluster: Cluster, plan: Plan, ticks: int) -> None:
    for _ in range(ticks):
        inject_faults(cluster, plan.faults)
        drive_clients(cluster, plan.workload)
        cluster.step()


def inject_faults(cluster: Cluster, faults: Faults) -> None:
    rng = cluster.rng
    if faults.partition_rate and rng.random() < faults.partition_rate:
        cluster.log(cluster.net.random_partition(cluster.ids))
    live = cluster.live()
    if faults.crash_rate and live and rng.random() < faults.crash_rate:
        cluster.crash(rng.choice(live), rng.choice(list(CrashPoint)))
    for node in cluster.down():
        if rng.random() < faults.restart_rate:
            cluster.start(node)
    if faults.compact_rate:
        for node in cluster.live():
            if rng.random() < faults.compact_rate:
                cluster.compact(node)


def drive_clients(cluster: Cluster, workload: Workload) -> None:
    rng = cluster.rng
    live = cluster.live()
    if not live:
        return
    leader = cluster.leader()
    target = leader if leader is not None and rng.random() < 0.8 else rng.choice(live)
    if rng.random() < workload.propose_rate:
        cluster.propose(target, rng.randint(1, workload.max_batch))
    if workload.read_rate and rng.random() < workload.read_rate:
        cluster.read(target)
    if leader is not None and workload.transfer_rate and rng.random() < workload.transfer_rate:
        cluster.transfer(leader, rng.choice([n for n in cluster.ids if n != leader]))


# --- the liveness phase: a healed, lossless world must converge in bounded time ------------------


def run_liveness_phase(cluster: Cluster, ticks: int) -> None:
    """Heal everything and restart every node; then a leader must be elected, a fresh proposal
    acknowledged, a read served, and every node must apply everything acknowledged, in `ticks`."""
    cluster.net.faults = NO_FAULTS
    cluster.net.recover()
    cluster.log("liveness phase: healed, no loss, every node up")
    for node in cluster.nodes.values():
        node.crash_point = None
    for node in cluster.down():
        cluster.start(node)
    cluster.liveness_start = cluster.history.max_applied()
    goal = LivenessGoal(cluster)
    for _ in range(ticks):
        goal.nudge()
        cluster.step()
        if goal.reached():
            return
    raise AssertionError(f"liveness: not converged within {ticks} ticks: {goal.status()}")


class LivenessGoal:
    """Tracks the final proposal and read the liveness phase waits for."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.finals: set[bytes] = set()  # one per attempt: a deposed leader's attempt may be lost
        self.read_ctx: int | None = None

    def nudge(self) -> None:
        """Propose a final entry (then ask for a read) at the leader until both succeed."""
        leader = self.cluster.leader()
        if leader is None:
            return
        if not self.final_index():
            pending = self.cluster.nodes[leader].proposals.values()
            if not any(payload in self.finals for _, payload in pending):
                self.finals.update(self.cluster.propose(leader))
        elif self.read_ctx is None or self._read_lost():
            self.read_ctx = self.cluster.read(leader)

    def reached(self) -> bool:
        final = self.final_index()
        if not final or self.read_ctx not in self.cluster.served_reads:
            return False
        return all(n.applied >= final for n in self.cluster.nodes.values())

    def final_index(self) -> int:
        for ack in reversed(self.cluster.history.acks):
            if ack.payload in self.finals:
                return ack.index
            if not self.finals or ack.index < self.cluster.liveness_start:
                break
        return 0

    def status(self) -> str:
        acked = max((a.index for a in self.cluster.history.acks), default=0)
        return (
            f"leader={self.cluster.leader()} final acknowledged at {self.final_index() or '-'} "
            f"read ctx={self.read_ctx} served={self.read_ctx in self.cluster.served_reads} "
            f"max acknowledged index={acked}\n{self.cluster.describe()}"
        )

    def _read_lost(self) -> bool:
        """The read was refused, or its node lost leadership (of that term) before serving it."""
        if self.read_ctx is None or self.read_ctx in self.cluster.served_reads:
            return self.read_ctx is None
        for node in self.cluster.nodes.values():
            if self.read_ctx in node.reads:
                term = node.reads[self.read_ctx][1]
                return node.core is None or node.core.role is not Role.LEADER or node.core.term != term
        return True

"""The simulated world: scheduler nodes (RaftCore + SchedulerState + SchedulerCore each, driven per
the Ready contract as `raftsched.node` and `raftsched.scheduler.dispatcher` do), executors, the
links between them, and one clock. One tick is TICK_MS of simulated time.

Node to node: the Raft sim's `Network` (loss, delay, duplication, reordering, partitions).
Executor to leader: one ordered stream at a time (gRPC over TCP: nothing is lost, duplicated or
reordered inside a stream; a stream is cut instead), with per-executor latency (slow links),
partitions, freezes and crashes.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from raftsched.raft.core import RaftConfig, RaftCore
from raftsched.raft.errors import NotLeaderError, ProposalDroppedError
from raftsched.raft.messages import EntryType, LeaderLost, Message, Ready, Role
from raftsched.raft.storage import MemoryStorage
from raftsched.scheduler.bugs import Bugs
from raftsched.scheduler.core import CoreConfig, SchedulerCore
from raftsched.scheduler.screening import Refusals
from raftsched.scheduler.view import Now
from raftsched.state import commands as cmds
from raftsched.state.machine import SchedulerState
from raftsched.v1 import commands_pb2, executor_pb2

from .checkers import Checker
from .executor import SimExecutor
from .memdb import MemoryDB
from .net import Faults, Network

TICK_MS = 100
T0 = 1_700_000_000_000
TRACE_LINES = 60


@dataclass(frozen=True, slots=True)
class Timing:
    """Scheduler timing in ms (the SPEC defaults scaled down so a schedule sees many leases)."""

    lease_ms: int = 1500
    kill_grace_ms: int = 500
    executor_timeout_ms: int = 2500
    resend_after_ms: int = 1000
    heartbeat_ms: int = 500  # executor heartbeats

    def core(self) -> CoreConfig:
        return CoreConfig(lease_ms=self.lease_ms, kill_grace_ms=self.kill_grace_ms,
                          executor_timeout_ms=self.executor_timeout_ms, resend_after_ms=self.resend_after_ms,
                          watchdog_ms=TICK_MS, schedule_sleep_ms=TICK_MS)


@dataclass(slots=True)
class SimNode:
    id: str
    storage: MemoryStorage
    core: RaftCore | None = None
    sm: SchedulerState | None = None
    sched: SchedulerCore | None = None
    applied: int = 0
    applied_term: int = 0
    clock_offset: int = 0  # this node's wall clock minus true time (jumps)
    pending: dict[int, tuple[int, int]] = field(default_factory=dict)  # log index -> (term, proposal id)


class World:
    def __init__(self, seed: int, size: int, executors: int, *, faults: Faults, timing: Timing,
                 bugs: Bugs, verbose: bool = False) -> None:
        master = random.Random(seed)
        self.net = Network(random.Random(master.getrandbits(64)), faults)
        self.net.on_drop = self._on_drop
        self.rng = random.Random(master.getrandbits(64))
        self._core_seeds = random.Random(master.getrandbits(64))
        self.timing = timing
        self.bugs = bugs
        self.verbose = verbose
        self.trace: deque[str] = deque(maxlen=TRACE_LINES)
        self.now = 0  # ticks
        self.max_ahead = 0  # ms: the furthest any node's wall clock ran ahead (backoffs wait for it)
        self.ids = tuple(f"n{i}" for i in range(1, size + 1))
        voters = frozenset(self.ids)
        self.nodes = {n: SimNode(n, MemoryStorage.bootstrap(voters)) for n in self.ids}
        self.check = Checker(self)
        self.executors = {
            f"e{i}": SimExecutor(f"e{i}", self, random.Random(master.getrandbits(64)), slots=self.rng.choice((2, 3, 4)))
            for i in range(1, executors + 1)
        }
        self._local: list[Message] = []
        self.refusals = Refusals(clock=lambda: self.mono / 1000)
        for node in self.ids:
            self.start(node)

    # --- clocks ---

    @property
    def mono(self) -> int:
        return self.now * TICK_MS

    def wall(self, node: SimNode) -> int:
        return T0 + self.mono + node.clock_offset

    def at(self, node: SimNode) -> Now:
        return Now(self.mono, self.wall(node))

    def log(self, line: str) -> None:
        text = f"[t={self.now}] {line}"
        self.trace.append(text)
        if self.verbose:
            print(text)

    # --- one tick ---

    def step(self) -> None:
        self.now += 1
        for node in self.nodes.values():
            if node.core is not None:
                node.core.tick()
        local, self._local = self._local, []
        for msg in [*local, *self.net.due(self.now)]:
            target = self.nodes[msg.to]
            if target.core is not None:
                target.core.step(msg)
        self.drain()
        for node in self.nodes.values():
            if node.sched is not None and node.sched.leading:
                node.sched.tick(self.at(node))
                self._carry_out(node)
        for executor in self.executors.values():
            executor.step()
        self.drain()
        self.check.after_step()

    def drain(self) -> None:
        for _ in range(20):
            busy = False
            for node in self.nodes.values():
                while node.core is not None and node.core.has_ready():
                    busy = True
                    self._handle_ready(node, node.core.ready())
                self._observe(node)
            if not busy:
                return

    # --- node lifecycle ---

    def start(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.core = RaftCore(RaftConfig(id=node_id, election_ticks=10, heartbeat_ticks=1), node.storage,
                             random.Random(self._core_seeds.getrandbits(64)), 0)
        node.sm = SchedulerState(MemoryDB())  # applies the whole log again (no snapshots here)
        node.applied = node.applied_term = 0
        node.sched = SchedulerCore(node_id, self.timing.core(), node.sm, refusals=self.refusals, bugs=self.bugs)
        node.pending.clear()
        self.log(f"start {node_id}")

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.core is None:
            return
        self._local.extend(LeaderLost(frm=node_id, to=o) for o in self.ids if o != node_id)
        node.core = node.sm = node.sched = None
        node.pending.clear()
        for executor in self.executors.values():
            executor.node_gone(node_id)
        self.log(f"crash {node_id}")

    def live(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.core is not None]

    def leader(self) -> SimNode | None:
        leaders = [n for n in self.nodes.values() if n.core is not None and n.core.role is Role.LEADER]
        return max(leaders, key=lambda n: n.core.term if n.core else 0, default=None)

    def serving(self, node_id: str) -> SchedulerCore | None:
        """The node's scheduler, when it leads and has caught up (else a Connect is refused)."""
        node = self.nodes[node_id]
        if node.sched is None or not node.sched.leading or not node.sched.caught_up:
            return None
        return node.sched

    # --- the driver ---

    def _handle_ready(self, node: SimNode, rd: Ready) -> None:
        core = node.core
        assert core is not None
        for msg in sorted(rd.messages, key=lambda m: m.to):
            self.net.send(msg, self.now)
        if rd.entries:
            node.storage.append(rd.entries)
        if rd.hard_state is not None:
            node.storage.set_hard_state(rd.hard_state)
        for msg in sorted(rd.persisted_messages, key=lambda m: m.to):
            self.net.send(msg, self.now)
        for entry in rd.committed:
            self._apply(node, entry.index, entry.term, entry.data if entry.type is EntryType.NORMAL else None)
        core.advance(rd)

    def _apply(self, node: SimNode, index: int, term: int, data: bytes | None) -> None:
        assert node.sm is not None and node.sched is not None
        self.check.before_apply(node, data)
        result = node.sm.apply([(index, data or None)])[0]
        node.applied, node.applied_term = index, term
        self.check.after_apply(node, index, data, result)
        waiting = node.pending.pop(index, None)
        if waiting is not None:
            proposed_term, proposal_id = waiting
            ok = proposed_term == term
            node.sched.proposal_done(proposal_id, ok, result if ok else None)
            self._carry_out(node)

    def _observe(self, node: SimNode) -> None:
        """Leadership changes start and stop the node's scheduler, as the node does."""
        core, sched = node.core, node.sched
        if core is None or sched is None:
            return
        leads = core.role is Role.LEADER
        if leads and not sched.leading:
            sched.became_leader(self.at(node))
            if node.sm is not None:  # the dispatcher listens while it leads (a copy per change)
                node.sm.add_listener(sched.job_changed)
            self.log(f"{node.id} leads term {core.term}")
        elif not leads and sched.leading:
            if node.sm is not None:
                node.sm.remove_listener(sched.job_changed)
            sched.stepped_down()
            self._fail_pending(node)
            self._carry_out(node)
            self.log(f"{node.id} stepped down")
        if sched.leading and not sched.caught_up and node.applied_term == core.term:
            sched.set_caught_up()  # what the read barrier gives the real shell
            self._carry_out(node)

    def _fail_pending(self, node: SimNode) -> None:
        pending, node.pending = node.pending, {}
        for _, proposal_id in pending.values():
            if node.sched is not None:
                node.sched.proposal_done(proposal_id, False)

    def _carry_out(self, node: SimNode) -> None:
        """The shell's `_flush`: propose, send, close, until the core has nothing more."""
        sched = node.sched
        while sched is not None and node.core is not None:
            rd = sched.take_ready()
            if not rd:
                return
            for proposal in rd.proposals:
                self._propose(node, proposal.id, proposal.command)
            for executor_id, gen, msg in rd.sends:
                self.executors[executor_id].from_leader(node.id, gen, msg)
            for executor_id, gen in rd.closes:
                self.executors[executor_id].closed_by_leader(node.id, gen)

    def _propose(self, node: SimNode, proposal_id: int, command: commands_pb2.Command) -> None:
        assert node.core is not None and node.sched is not None
        self.check.leader_proposed(node, command)
        try:
            index, term = node.core.propose([cmds.encode(command, self.wall(node))])
        except (NotLeaderError, ProposalDroppedError):
            node.sched.proposal_done(proposal_id, False)
            return
        node.pending[index] = (term, proposal_id)

    def _on_drop(self, msg: Message) -> None:
        pass

    # --- clients ---

    def submit(self, node_id: str, command: commands_pb2.Command) -> int | None:
        """Propose a client command at the node; returns the log index when appended."""
        node = self.nodes[node_id]
        if node.core is None:
            return None
        try:
            index, term = node.core.propose([cmds.encode(command, self.wall(node))])
        except (NotLeaderError, ProposalDroppedError):
            return None
        self.check.client_proposed(node_id, index, term, command)
        return index

    def executor_message(self, node_id: str, gen: int, executor_id: str, msg: executor_pb2.ExecutorMessage) -> str:
        node = self.nodes[node_id]
        sched = self.serving(node_id)
        if sched is None:
            return "not leading"
        problem = sched.message(self.at(node), executor_id, gen, msg)
        self._carry_out(node)
        return problem

    def register(self, node_id: str, first: executor_pb2.ExecutorMessage) -> tuple[str, int]:
        node = self.nodes[node_id]
        sched = self.serving(node_id)
        if sched is None:
            return "not the leader", 0
        refused, gen = sched.register(self.at(node), first)
        self._carry_out(node)
        return refused, gen

    def stream_closed(self, node_id: str, executor_id: str, gen: int) -> None:
        node = self.nodes[node_id]
        if node.sched is not None:
            node.sched.stream_closed(executor_id, gen)
            self._carry_out(node)

    def describe(self) -> str:
        lines = []
        for node in self.nodes.values():
            core = node.core
            role = f"{core.role.name} term={core.term} commit={core.commit}" if core else "DOWN"
            lines.append(f"  {node.id}: {role} applied={node.applied} clock={node.clock_offset:+d}ms")
        for executor in self.executors.values():
            lines.append(f"  {executor.describe()}")
        return "\n".join(lines)

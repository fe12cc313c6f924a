"""N simulated nodes, each a MemoryStorage and a RaftCore, driven exactly per the Ready contract.

The driver (`_handle_ready`) does what `raftsched.node` does for real: send, persist, send what
depended on the write, apply, advance. A crash drops the core and everything not in MemoryStorage;
it may happen between steps or at any point inside a ready (`CrashPoint`). Messages in flight to a
crashed node are dropped if they arrive while it is down and delivered if it is back by then.

Every observation goes through the checkers in `checkers.py` as it happens, so a violation is
reported at the step that caused it.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from raftsched.raft.core import RaftConfig, RaftCore, snapshot_meta_at
from raftsched.raft.errors import NotLeaderError, ProposalDroppedError
from raftsched.raft.messages import (
    AppendRequest,
    Entry,
    Heartbeat,
    LeaderLost,
    Message,
    ReadState,
    Ready,
    Role,
    SnapshotRequest,
    SnapshotStatus,
)
from raftsched.raft.storage import MemoryStorage

from . import checkers as chk
from .checkers import Ack, Content, History
from .hostile import HostilePeer
from .network import NO_FAULTS, Faults, Network

CoreFactory = Callable[[RaftConfig, MemoryStorage, random.Random, int], RaftCore]
TRACE_LINES = 80  # the tail of the event trace printed with a failure


class CrashPoint(Enum):
    """Where in the Ready contract a crash strikes (everything after it is lost)."""

    NOW = 0  # between steps
    BEFORE_PERSIST = 1  # after sending `messages`
    BEFORE_PERSISTED_SEND = 2  # after the synced write
    BEFORE_APPLY = 3  # after sending `persisted_messages`


TORN_POINTS = (CrashPoint.BEFORE_PERSIST, CrashPoint.BEFORE_PERSISTED_SEND, CrashPoint.BEFORE_APPLY)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The core configuration every node of a run shares (drawn from the seed in a schedule)."""

    election_ticks: int = 10
    heartbeat_ticks: int = 1
    max_inflight: int = 64
    max_msg_bytes: int = 1 << 20
    pre_vote: bool = True
    check_quorum: bool = True

    def for_node(self, node: str) -> RaftConfig:
        return RaftConfig(
            id=node,
            election_ticks=self.election_ticks,
            heartbeat_ticks=self.heartbeat_ticks,
            max_inflight=self.max_inflight,
            max_msg_bytes=self.max_msg_bytes,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
        )


@dataclass(slots=True)
class SimNode:
    id: str
    storage: MemoryStorage
    core: RaftCore | None = None
    applied: int = 0
    state: list[Content] = field(default_factory=list)  # the state machine: every applied entry
    proposals: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> (term, payload)
    reads: dict[int, tuple[int, int]] = field(default_factory=dict)  # ctx -> (floor, term asked in)
    crash_point: CrashPoint | None = None
    incarnation: int = 0

    @property
    def alive(self) -> bool:
        return self.core is not None

    def live_core(self) -> RaftCore:
        assert self.core is not None, f"{self.id} is down"
        return self.core


@dataclass(slots=True)
class Counters:
    proposed: int = 0
    acked: int = 0
    reads_requested: int = 0
    reads_served: int = 0
    crashes: int = 0
    compactions: int = 0
    snapshots_installed: int = 0


class Cluster:
    """The simulated world: nodes, network, clock (`now`, in ticks) and the observed history."""

    def __init__(
        self,
        size: int,
        seed: int,
        *,
        faults: Faults = NO_FAULTS,
        config: SimConfig = SimConfig(),
        core_factory: CoreFactory | None = None,
        verbose: bool = False,
        merge_appends_within: int = 0,
    ) -> None:
        master = random.Random(seed)
        self.net = Network(random.Random(master.getrandbits(64)), faults)
        self.net.merge_appends_within = merge_appends_within
        self.net.on_drop = self._on_drop
        self.rng = random.Random(master.getrandbits(64))  # workload and fault schedule
        self._core_seeds = random.Random(master.getrandbits(64))  # one rng per core incarnation
        self.config = config
        self.core_factory: CoreFactory = core_factory or RaftCore
        self.ids = tuple(f"n{i}" for i in range(1, size + 1))
        voters = frozenset(self.ids)
        self.nodes = {node: SimNode(node, MemoryStorage.bootstrap(voters)) for node in self.ids}
        self.history = History()
        self.counters = Counters()
        self.now = 0
        self.verbose = verbose
        self.trace: deque[str] = deque(maxlen=TRACE_LINES)
        self._snapshot_data: dict[int, tuple[Content, ...]] = {}  # index -> state at that index
        self._local: list[Message] = []  # transport reports, stepped with the next delivery
        self._bounced: list[str] = []  # crashed inside a ready by `torn_rate`: restart next tick
        self.served_reads: set[int] = set()
        self.sent: list[Message] | None = None  # scenario tests set a list to record every send
        self.liveness_start = 0  # the applied index when the liveness phase began
        self.hostile: HostilePeer | None = None  # set by a schedule that draws the hostile-peer fault
        self._payloads = 0
        self._read_ctx = 0
        for node in self.ids:
            self.start(node)

    # --- the world's clock ---

    def step(self) -> None:
        """One tick of simulated time: tick every core, deliver what is due, drain every ready."""
        self.now += 1
        bounced, self._bounced = self._bounced, []
        for node_id in bounced:
            if self.nodes[node_id].core is None:
                self.start(node_id)
        for node in self.nodes.values():
            if node.core is not None:
                node.core.tick()
        self.deliver()

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.step()

    def deliver(self) -> None:
        """Step every due message (and transport report) into its live target, then drain."""
        local, self._local = self._local, []
        if self.hostile is not None:
            self.hostile.inject({n.id: n.core for n in self.nodes.values() if n.core is not None}, self.ids)
        for msg in [*local, *self.net.due(self.now)]:
            target = self.nodes[msg.to]
            if target.core is not None:
                self._step_message(target, msg)
            else:
                self._on_drop(msg)  # the stream to a crashed node fails
        self.drain()

    def stabilize(self, max_ticks: int = 200) -> None:
        """Deliver (without ticking) until no message is in flight (etcd's `stabilize`)."""
        self.drain()
        for _ in range(max_ticks):
            if not self.net.in_flight() and not self._local:
                return
            self.now += 1
            self.deliver()
        raise AssertionError(f"not stable after {max_ticks} ticks")

    def drain(self) -> None:
        for node in self.nodes.values():
            while node.core is not None and node.core.has_ready():
                self._handle_ready(node, node.core.ready())
            if node.core is not None:
                self._check_node(node, node.core)

    # --- node lifecycle ---

    def start(self, node_id: str) -> None:
        """(Re)start a node over its storage; the state machine comes back from the snapshot."""
        node = self.nodes[node_id]
        assert node.core is None, f"{node_id} is already running"
        snap = node.storage.snapshot
        node.applied = snap.index
        node.state = list(node.storage.snapshot_data or ())  # type: ignore[call-overload]
        node.incarnation += 1
        node.crash_point = None
        rng = random.Random(self._core_seeds.getrandbits(64))
        node.core = self.core_factory(self.config.for_node(node_id), node.storage, rng, snap.index)
        chk.check_restart_commit(self.history, node_id, node.core.commit)
        self.log(f"start {node_id} (incarnation {node.incarnation}, term {node.core.term})")

    def crash(self, node_id: str, point: CrashPoint = CrashPoint.NOW) -> None:
        """Crash now, or arm a crash at `point` inside the node's next ready."""
        node = self.nodes[node_id]
        if point is CrashPoint.NOW:
            self._crash_now(node)
        else:
            node.crash_point = point

    def _crash_now(self, node: SimNode) -> None:
        # A dead process's connections close: every peer's transport reports the lost stream.
        self._local.extend(LeaderLost(frm=node.id, to=other) for other in self.nodes if other != node.id)
        node.core = None
        node.proposals.clear()  # their outcome is unknown to the client
        node.reads.clear()
        node.crash_point = None
        self.counters.crashes += 1
        self.log(f"crash {node.id}")

    def compact(self, node_id: str) -> None:
        """Snapshot the state machine at what the node applied and drop the log up to there."""
        node = self.nodes[node_id]
        storage = node.storage
        if node.applied <= storage.snapshot.index:
            return
        core = node.live_core()
        data = tuple(node.state[: node.applied])
        self._snapshot_data.setdefault(node.applied, data)
        meta = snapshot_meta_at(core, node.applied)
        storage.compact(meta.index, meta.term, meta.config, data)
        core.compacted_to(meta.index)
        self.counters.compactions += 1

    # --- client requests ---

    def propose(self, node_id: str, count: int = 1) -> list[bytes]:
        """Propose `count` fresh unique payloads at the node; returns them, or [] if refused."""
        core = self.nodes[node_id].core
        if core is None:
            return []
        payloads = [self._next_payload() for _ in range(count)]
        try:
            index, term = core.propose(payloads)
        except (NotLeaderError, ProposalDroppedError):
            return []
        for offset, payload in enumerate(payloads):
            self.nodes[node_id].proposals[index + offset] = (term, payload)
        self.counters.proposed += count
        self.log(f"{node_id} proposed {count} at {index} term {term}")
        return payloads

    def read(self, node_id: str) -> int | None:
        """Ask the node for a ReadIndex; returns the request's ctx, or None if refused."""
        node = self.nodes[node_id]
        if node.core is None:
            return None
        self._read_ctx += 1
        try:
            node.core.read_index(self._read_ctx)
        except NotLeaderError:
            return None
        # The floor: everything applied anywhere by now (so every acknowledged proposal too).
        node.reads[self._read_ctx] = (self.history.max_applied(), node.core.term)
        self.counters.reads_requested += 1
        return self._read_ctx

    def transfer(self, node_id: str, target: str) -> None:
        core = self.nodes[node_id].core
        if core is not None and core.role is Role.LEADER:
            core.transfer_leader(target)
            self.log(f"{node_id} transfers leadership to {target}")

    # --- observation ---

    def live(self) -> list[str]:
        return [node.id for node in self.nodes.values() if node.core is not None]

    def down(self) -> list[str]:
        return [node.id for node in self.nodes.values() if node.core is None]

    def leaders(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.core is not None and n.core.role is Role.LEADER]

    def leader(self) -> str | None:
        """The leader of the highest term among live nodes, if there is one."""
        best = max(self.leaders(), key=lambda n: self.nodes[n].live_core().term, default=None)
        return best

    def core(self, node_id: str) -> RaftCore:
        return self.nodes[node_id].live_core()

    def log_of(self, node_id: str) -> list[Entry]:
        return self.nodes[node_id].storage.log

    def log(self, line: str) -> None:
        text = f"[t={self.now}] {line}"
        self.trace.append(text)
        if self.verbose:
            print(text)

    def describe(self) -> str:
        lines = []
        for node in self.nodes.values():
            core = node.core
            role = f"{core.role.name} term={core.term} commit={core.commit}" if core else "DOWN"
            last = node.storage.last_index()
            lines.append(f"  {node.id}: {role} applied={node.applied} last={last}")
        return "\n".join(lines)

    # --- the driver: one ready, exactly per the contract ---

    def _handle_ready(self, node: SimNode, rd: Ready) -> None:
        core = node.live_core()
        self._maybe_tear(node, rd)
        self._send(node, rd.messages)
        if self._maybe_crash(node, CrashPoint.BEFORE_PERSIST):
            return
        self._persist(node, rd)
        self._observe_role(node, core, rd)
        if self._maybe_crash(node, CrashPoint.BEFORE_PERSISTED_SEND):
            return
        self._send(node, rd.persisted_messages)
        if self._maybe_crash(node, CrashPoint.BEFORE_APPLY):
            return
        for entry in rd.committed:
            self._apply(node, core, entry)
        for read in rd.read_states:
            self._serve_read(node, read)
        core.advance(rd)

    def _maybe_tear(self, node: SimNode, rd: Ready) -> None:
        """Arm a crash inside a ready that writes, where durability matters (then bounce back)."""
        rate = self.net.faults.torn_rate
        if rate and (rd.hard_state or rd.entries) and self.rng.random() < rate:
            node.crash_point = self.rng.choice(TORN_POINTS)
            self._bounced.append(node.id)

    def _maybe_crash(self, node: SimNode, point: CrashPoint) -> bool:
        if node.crash_point is not point:
            return False
        self.log(f"{node.id} crashes at {point.name}")
        self._crash_now(node)
        return True

    def _send(self, node: SimNode, messages: Iterable[Message]) -> None:
        # The core walks its peers in set order, which varies with PYTHONHASHSEED; a stable sort
        # by destination keeps a run a function of its seed alone.
        for msg in sorted(messages, key=_destination):
            assert msg.frm == node.id, f"{node.id} sent a message from {msg.frm}: {msg}"
            assert msg.to in self.nodes and msg.to != node.id, f"{node.id} sent to {msg.to!r}: {msg}"
            if isinstance(msg, SnapshotRequest):
                self._stage_snapshot(node, msg)
            if self.sent is not None:
                self.sent.append(msg)
            self.net.send(msg, self.now)

    def _persist(self, node: SimNode, rd: Ready) -> None:
        storage = node.storage
        if rd.snapshot is not None:
            self._install_snapshot(node, rd)
        if rd.entries:
            storage.append(rd.entries)
            base = (storage.snapshot.index, storage.snapshot.term)
            chk.check_log_matching(self.history, node.id, storage.log, rd.entries[0].index, base)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
            chk.check_persisted_commit(self.history, node.id, rd.hard_state.commit)
            assert rd.hard_state.commit <= storage.last_index(), (
                f"{node.id} persisted commit {rd.hard_state.commit} beyond its log ({storage.last_index()})"
            )

    def _install_snapshot(self, node: SimNode, rd: Ready) -> None:
        meta = rd.snapshot
        assert meta is not None
        data = self._snapshot_data.get(meta.index)
        assert data is not None, f"{node.id}: asked to install a snapshot at {meta.index} nobody took"
        node.storage.apply_snapshot(meta, data)
        chk.check_snapshot_restore(self.history, node.id, meta.index, data)
        node.state = list(data)
        node.applied = meta.index
        for index in [i for i in node.proposals if i <= meta.index]:
            del node.proposals[index]
        self.counters.snapshots_installed += 1
        self.log(f"{node.id} installs snapshot at {meta.index} term {meta.term}")

    def _stage_snapshot(self, node: SimNode, msg: SnapshotRequest) -> None:
        """The leader's driver streams the snapshot it holds; the sim keeps the data by index."""
        snap = node.storage.snapshot
        assert msg.meta.index == snap.index and msg.meta.term == snap.term, (
            f"{node.id} sent snapshot {msg.meta} but holds {snap}"
        )
        self._snapshot_data.setdefault(snap.index, node.storage.snapshot_data)  # type: ignore[arg-type]

    def _on_drop(self, msg: Message) -> None:
        if isinstance(msg, SnapshotRequest):
            self._local.append(SnapshotStatus(frm=msg.to, to=msg.frm, failed=True))
        elif isinstance(msg, AppendRequest | Heartbeat):
            # A lost append may mean a reset stream, which the transport reports to the receiver
            # as LeaderLost: often spurious (the sender lives on), which must never break safety.
            self._local.append(LeaderLost(frm=msg.frm, to=msg.to))

    def _step_message(self, target: SimNode, msg: Message) -> None:
        core = target.live_core()
        refused_before = core.refusals.total
        core.step(msg)
        if core.refusals.total != refused_before:
            self._honest_refusal(target.id, msg, core.refusals.take_unlogged()[-1].reason.value)
        if isinstance(msg, SnapshotRequest):
            self._local.append(SnapshotStatus(frm=msg.to, to=msg.frm, failed=False))

    def _honest_refusal(self, node: str, msg: Message, reason: str) -> None:
        """A node refused a message a correct node sent: with a fixed membership, never (a
        refusal must be sound, or it could cost liveness); MemberCluster tolerates some."""
        raise AssertionError(f"{node} refused a correct node's message ({reason}): {msg}")

    def _observe_role(self, node: SimNode, core: RaftCore, rd: Ready) -> None:
        soft = rd.soft_state
        if soft is not None:
            self.log(f"{node.id} is {soft.role.name} in term {soft.term} (leader {soft.leader or '-'})")
        if core.role is not Role.LEADER:
            return
        chk.check_election_safety(self.history, node.id, core.term)
        if core.term not in self.history.leader_logs:
            terms = self._log_terms(node)
            chk.check_leader_completeness(self.history, core.term, terms)
            chk.check_acks_in_new_leader(self.history, core.term, terms)

    def _log_terms(self, node: SimNode) -> tuple[int, ...]:
        """Terms of the node's log by index; compacted entries count as the committed ones."""
        snap_index = node.storage.snapshot.index
        below = [content[0] for content in self.history.applied[:snap_index]]
        return (*below, *(entry.term for entry in node.storage.log))

    def _apply(self, node: SimNode, core: RaftCore, entry: Entry) -> None:
        chk.check_apply(self.history, node.id, entry, node.applied, core.term)
        node.applied = entry.index
        node.state.append(chk.content(entry))
        proposal = node.proposals.pop(entry.index, None)
        if proposal is None or proposal[0] != entry.term:
            return
        term, payload = proposal
        assert entry.data == payload, (
            f"{node.id} applied {entry.data!r} at index {entry.index} term {term}, where it proposed {payload!r}"
        )
        chk.check_ack(self.history, Ack(payload, entry.index, term, core.term))
        self.counters.acked += 1

    def _serve_read(self, node: SimNode, read: ReadState) -> None:
        asked = node.reads.pop(read.ctx, None)
        assert asked is not None, f"{node.id} released ReadIndex ctx={read.ctx} it was not asked for (or twice)"
        chk.check_read(node.id, read, asked[0])
        self.counters.reads_served += 1
        self.served_reads.add(read.ctx)
        self.log(f"{node.id} read ctx={read.ctx} at index {read.index}")

    def _check_node(self, node: SimNode, core: RaftCore) -> None:
        chk.check_commit(self.history, node.id, core.commit)
        if core.role is Role.LEADER:
            chk.check_election_safety(self.history, node.id, core.term)

    def _next_payload(self) -> bytes:
        self._payloads += 1
        return b"p%d" % self._payloads


def _destination(msg: Message) -> str:
    return msg.to

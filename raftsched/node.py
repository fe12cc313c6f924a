"""One scheduler node: RocksDB, the Raft driver, the state machine, the gRPC server, and the
leader-only scheduler that runs while this node leads.

`run_node(config)` is what `raftsched node` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import hashlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from raftsched import memtrim
from raftsched.api.forward import Forwarder
from raftsched.api.frames import CheckedServer, RequestRefusals
from raftsched.clock import now_ms
from raftsched.config import NodeConfig, is_loopback
from raftsched.corruption import StateHasher
from raftsched.loopwatch import LoopWatch
from raftsched.notify.delivery import Notifier, warm_up
from raftsched.notify.webhook import RetryPolicy
from raftsched.raft.config import ChangeKind, decode_change
from raftsched.raft.core import RaftConfig
from raftsched.raft.errors import RaftError, TransferInProgressError
from raftsched.raft.messages import (
    ConfigState,
    EntryType,
    HardState,
    Role,
    SnapshotMeta,
    SnapshotRequest,
    SoftState,
)
from raftsched.raft.storage import CompactedError, UnavailableError
from raftsched.raft_driver import LeaderMovedError, OutcomeUnknownError, OverloadedError, ProposalLostError, RaftDriver
from raftsched.rebuild import promotion_done, promotion_pending
from raftsched.scheduler.corruption import PeerAnswer
from raftsched.scheduler.dispatcher import LeaderScheduler
from raftsched.snapshotting import Snapshot, SnapshotKeeper, Staged, StateInstall
from raftsched.state import commands as cmds
from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState
from raftsched.storage.db import NodeDB
from raftsched.storage.errors import StoreError
from raftsched.storage.members import load_addresses, save_addresses
from raftsched.storage.raft_store import RaftStore
from raftsched.tasks import TaskOwner
from raftsched.transport.options import server_options
from raftsched.transport.peers import RaftTransport
from raftsched.transport.snapshots import (
    ReceivedSnapshot,
    SnapshotFile,
    SnapshotTransferError,
    SnapshotUnavailableError,
)
from raftsched.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    commands_pb2,
    executor_pb2,
    jobs_pb2,
    raft_pb2,
    scheduler_pb2,
)

log = logging.getLogger("raftsched.node")


class Node:
    """Holds a node's parts together; the servicers and the leader scheduler reach them here."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.id = config.id
        self.db = NodeDB(config.data_dir, column_families=COLUMN_FAMILIES)
        try:
            self.store = RaftStore(self.db)
            self.addresses = self._initial_addresses()
            self.store.verify()
            self.sm = SchedulerState(self.db)
        except StoreError:
            self.db.close()
            raise
        except Exception as err:  # rocksdict reports RocksDB corruption as a bare Exception
            self.db.close()
            raise StoreError(f"reading {config.data_dir} failed: {err}") from err
        if config.force_new_cluster:
            self._force_new_cluster()
        options = _grpc_options(config)
        credentials = peer_credentials(config)
        self.forwarder = Forwarder(options, credentials)
        self.transport = RaftTransport(
            self.id,
            {k: v for k, v in self.addresses.items() if k != self.id},
            self._deliver,
            max_message_bytes=config.max_message_bytes,
            max_append_bytes=config.max_append_bytes,
            credentials=credentials,
        )
        ticks = max(1, config.heartbeat_ms // config.tick_ms)
        self.driver = RaftDriver(
            node_id=self.id,
            store=self.store,
            transport=self.transport,
            apply=self.sm.apply,
            applied=self.sm.applied_index,
            raft_config=RaftConfig(
                id=self.id,
                heartbeat_ticks=ticks,
                election_ticks=max(ticks + 1, config.election_ms // config.tick_ms),
                max_inflight=config.max_inflight,
                max_msg_bytes=config.max_append_bytes,
            ),
            tick_seconds=config.tick_ms / 1000,
            on_soft_state=self._on_soft_state,
            on_config_entry=self._on_config_entry,
            on_install_snapshot=self._install_snapshot,
            max_pending_proposals=config.max_pending_proposals,
        )
        self.hasher = StateHasher(self.sm)  # hashes the state at each corruption check
        self.sm.on_alarms = self._alarms_changed
        self._alarms_changed()
        self.metrics = self._make_metrics()
        self.loop_watch = LoopWatch()
        self.tasks = TaskOwner(f"node {self.id}")  # owns every background task of this node
        self._soft_changed = asyncio.Event()  # set (and replaced) at every role or leader change
        self.snapshots = SnapshotKeeper(self.db, COLUMN_FAMILIES, self.loop_watch)
        self._staged: tuple[ReceivedSnapshot, Staged] | None = None
        self.transport.snapshot_source = self._snapshot_for
        self.transport.router.snapshot_sink = self._stage_snapshot
        self.transport.router.snapshot_dir = self.snapshots.directory
        self.transport.router.admission = lambda msg: self.driver.core.admission(msg)
        self.scheduler = LeaderScheduler(self)
        self.request_refusals = RequestRefusals(self.id)  # bodies that do not parse, oversized batches
        self.notifier = Notifier(self.sm, self.propose_internal, policy=notify_policy(config),
                                 cluster=config.cluster_name, leader=lambda: (self.id, self.driver.core.term))
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.started_at = time.monotonic()
        self.failure: BaseException | None = None
        self.promote_when_caught_up = False  # set after --rebuild-from-peers when this node was a voter

    # --- membership ---

    def _initial_addresses(self) -> dict[str, str]:
        """The address book: stored, else from --peers, else learnt from the cluster we --join."""
        stored = load_addresses(self.db)
        if stored is not None and self.store.is_bootstrapped():
            stored[self.id] = self.config.listen
            return stored
        if self.config.join:
            conf, addresses = join_cluster(self.config.join, self.id, credentials=peer_credentials(self.config))
        else:
            addresses = dict(self.config.peers)
            conf = ConfigState(voters=frozenset(addresses))
        addresses[self.id] = self.config.listen
        if not self.store.is_bootstrapped():
            self.store.bootstrap(conf)
        save_addresses(self.db, addresses)
        return addresses

    def _force_new_cluster(self) -> None:
        """Disaster recovery after losing a quorum (as etcd's --force-new-cluster): keep every
        entry this node knows to be committed, drop its uncommitted tail, and restart as the only
        voter. Other nodes are then added back as learners (docs/operations.md)."""
        hard = self.store.hard_state()
        commit = max(hard.commit, self.store.first_index() - 1)
        if self.sm.applied_index < commit:
            entries = self.store.entries(self.sm.applied_index + 1, commit + 1)
            self.sm.apply([(e.index, e.data if e.type is EntryType.NORMAL else None) for e in entries])
        self.db.sync_wal()
        alone = ConfigState(voters=frozenset({self.id}))
        meta = SnapshotMeta(commit, self.store.term(commit), alone)
        self.store.save(HardState(term=hard.term, vote="", commit=commit), [], meta)
        self.addresses = {self.id: self.config.listen}
        save_addresses(self.db, self.addresses)
        log.warning("node %s: forced a new one-member cluster at committed index %d", self.id, commit)

    def _on_config_entry(self, index: int, data: bytes, committed: bool) -> None:
        try:
            change = decode_change(data)
        except (ValueError, KeyError):
            return
        if change.kind is ChangeKind.ADD_LEARNER and change.address:
            if self.addresses.get(change.node) == change.address:
                return
            self.addresses[change.node] = change.address
        elif change.kind is ChangeKind.REMOVE and committed and change.node != self.id:
            if self.addresses.pop(change.node, None) is None:
                return
        else:
            return
        save_addresses(self.db, self.addresses)
        self.transport.update_peers({k: v for k, v in self.addresses.items() if k != self.id})
        log.info("node %s: members now %s", self.id, sorted(self.addresses))

    # --- snapshots and compaction ---

    async def make_snapshot(self) -> tuple[SnapshotMeta, Snapshot]:
        """A new state snapshot (made off the event loop) and its Raft metadata."""
        return self._with_meta(await self.snapshots.make())

    async def _snapshot_for(self, msg: SnapshotRequest) -> SnapshotFile:
        """What InstallSnapshot sends a follower: a recent snapshot the follower can continue
        from with the log this leader still has (its index at or after the log's start)."""
        snapshot = await self.snapshots.for_peer(self.store.first_index() - 1)
        meta, _ = self._with_meta(snapshot)
        return SnapshotFile(SnapshotRequest(msg.frm, msg.to, msg.term, meta), snapshot.path, dict(self.addresses))

    def _with_meta(self, snapshot: Snapshot) -> tuple[SnapshotMeta, Snapshot]:
        core = self.driver.core
        try:
            meta = SnapshotMeta(snapshot.index, core.log.term(snapshot.index), core.config_for_snapshot(snapshot.index))
        except (CompactedError, UnavailableError) as err:
            raise SnapshotUnavailableError(f"snapshot at {snapshot.index} is no longer usable: {err!r}") from None
        if self.metrics is not None:
            self.metrics.snapshot("taken", snapshot.size)
            self.metrics.snapshot_made(snapshot.seconds, snapshot.loop_stall)
        return meta, snapshot

    async def _stage_snapshot(self, received: ReceivedSnapshot) -> None:
        """A whole snapshot file arrived: check it and extract its files, then let the core decide."""
        try:
            staged = await self.snapshots.stage(received.path)
        except StoreError as err:
            raise SnapshotTransferError(str(err)) from None
        if staged.index != received.request.meta.index:
            self.snapshots.discard(staged)
            raise SnapshotTransferError(
                f"the file holds the state at {staged.index}, the request says {received.request.meta.index}")
        if self._staged is not None:
            self.snapshots.discard(self._staged[1])
        self._staged = (received, staged)
        self.driver.deliver(received.request)

    def _install_snapshot(self, meta: SnapshotMeta) -> StateInstall:
        if self._staged is None or self._staged[0].request.meta != meta:
            raise AssertionError(f"asked to install snapshot {meta} with no matching data staged")
        received, staged = self._staged
        self._staged = None
        size = sum(f.stat().st_size for files in staged.files.values() for f in files)  # moved in by install

        def reload() -> None:
            self.sm.reload()
            self.addresses.update(received.addresses)
            self.addresses[self.id] = self.config.listen
            save_addresses(self.db, self.addresses)
            self.transport.update_peers({k: v for k, v in self.addresses.items() if k != self.id})
            if self.metrics is not None:
                self.metrics.snapshot("installed", size)
            log.info("node %s installed snapshot at index %d", self.id, meta.index)

        return self.snapshots.install(staged, reload)

    async def _compaction_loop(self) -> None:
        last = self.driver.counters.as_dict()
        rounds = 0
        while True:
            await asyncio.sleep(1.0)
            self.maybe_compact()
            rounds += 1
            if rounds % TRIM_EVERY_S == 0:
                await asyncio.to_thread(memtrim.trim)
            if log.isEnabledFor(logging.DEBUG) and self.driver.counters.as_dict() != last:
                last = self.driver.counters.as_dict()
                log.debug("node %s driver counters %s", self.id, last)

    def maybe_compact(self, force: bool = False) -> int:
        """Drop log entries the state machine has durably applied, keeping a tail for slow
        followers. Returns the new compaction index (0 when nothing was done)."""
        cfg = self.config
        applied = self.sm.applied_index
        first = self.store.first_index()
        grown = applied - first + 1 >= cfg.snapshot_entries or self.driver.bytes_since_compaction >= cfg.snapshot_bytes
        index = applied - cfg.snapshot_keep_tail if not force else applied
        if not (grown or force) or index < first:
            return 0
        self.db.sync_wal()  # the state machine is written without sync: make it durable first
        core = self.driver.core
        self.store.compact(index, core.log.term(index), core.config_for_snapshot(index))
        core.compacted_to(index)
        self.driver.bytes_since_compaction = 0
        if self.metrics is not None:
            self.metrics.compactions.inc()
        log.info("node %s compacted the log up to %d", self.id, index)
        return index

    def cluster_id(self) -> str:
        """A name for the cluster in backups: derived from the current members' ids."""
        founders = ",".join(sorted(self.addresses))
        return hashlib.sha256(founders.encode()).hexdigest()[:16]

    # --- alarms (SPEC §6 promise 15) ---

    @property
    def alarms(self) -> list[str]:
        """The alarms the cluster raised on this node (replicated), e.g. ["CORRUPT"]."""
        return self.sm.alarms_of(self.id)

    def _alarms_changed(self) -> None:
        """A node under an alarm must not lead: hand leadership over, then never campaign."""
        corrupt = bool(self.alarms)
        core = self.driver.core if hasattr(self, "driver") else None
        if core is None:
            return
        if corrupt and core.may_campaign:
            log.error("node %s: this node's stored state is CORRUPT; it serves no reads and will not lead "
                      "until it is rebuilt (raftsched node --rebuild-from-peers; docs/operations.md)", self.id)
            if core.role is Role.LEADER:
                target = _most_caught_up(core.status(), self.id)
                if target:
                    self.driver.transfer_leader(target)
        elif not corrupt and not core.may_campaign:
            log.warning("node %s: the CORRUPT alarm on this node was cleared", self.id)
        core.set_may_campaign(not corrupt)
        self.driver.wake()

    def local_hash(self, check_id: int) -> tuple[int, bytes] | None:
        return self.hasher.local_hash(check_id)

    def hashing_at(self, check_id: int) -> int | None:
        return self.hasher.hashing_at(check_id)

    async def peer_hash(self, peer: str, check_id: int) -> PeerAnswer:
        """A peer's digest at corruption check `check_id`, or how far it applied (None: down)."""
        address = self.addresses.get(peer)
        if address is None:
            return None
        stub = admin_pb2_grpc.AdminStub(self.forwarder.channel(address))
        try:
            answer = await stub.StateHash(admin_pb2.StateHashRequest(check_id=check_id), timeout=2.0)
        except grpc.aio.AioRpcError:
            return None
        return (answer.index, answer.digest) if answer.ready else answer.applied_index

    def members(self) -> frozenset[str]:
        conf = self.driver.core.conf
        return frozenset(conf.voters | conf.learners)

    def members_support(self, feature: int) -> bool:
        """Whether every other member reported `feature` (raftsched.features) with its last reply
        to this leader's appends: a member not heard from on the current stream counts as not."""
        return all((self.transport.peer_features(m) or 0) & feature for m in self.members() if m != self.id)

    # --- facts the servicers need ---

    @property
    def is_leader(self) -> bool:
        return self.driver.is_leader

    @property
    def leader_id(self) -> str:
        return self.driver.core.leader

    def leader_address(self) -> str:
        """Where the leader is, as far as this node knows; "" when it has not heard from it for
        half an election timeout (it may be dead: better no hint than a hint to a corpse)."""
        if not self.is_leader:
            silent = time.monotonic() - self.driver.last_leader_contact
            if silent > max(2 * self.config.heartbeat_ms, self.config.election_ms / 2) / 1000:
                return ""
        return self.addresses.get(self.leader_id, "")

    async def propose(self, cmd: commands_pb2.Command, timeout: float = 10.0) -> commands_pb2.ApplyResult:
        """Stamp the leader's time on a command, replicate it, and return its apply result.

        During a leadership transfer the proposal is held, not refused: once the transfer ends
        (within an election timeout) it is proposed here if this node still leads, else
        LeaderMovedError names the new leader, so the client sends it there without a backoff."""
        data = cmds.encode(cmd, now_ms())
        try:
            result = await self.driver.propose(data, timeout)
        except TransferInProgressError:
            await self.leader_settled(min(timeout, 2 * self.config.election_ms / 1000))
            if not self.is_leader:
                raise LeaderMovedError(self.leader_address()) from None
            result = await self.driver.propose(data, timeout)
        return result if result is not None else commands_pb2.ApplyResult()

    async def leader_settled(self, timeout: float) -> None:
        """Until this node leads with no transfer under way, or follows a known leader (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_leader and not self.driver.core.transferee:
                return
            if not self.is_leader and self.leader_address():
                return
            waiter = self._soft_changed
            with contextlib.suppress(TimeoutError):
                # woken by the step-down and by the new leader's first message; the tick bound
                # covers a transfer abandoned at its timeout, which changes no soft state
                await asyncio.wait_for(waiter.wait(), self.config.tick_ms / 1000)

    async def propose_internal(self, cmd: commands_pb2.Command, timeout: float = 10.0) -> commands_pb2.ApplyResult:
        """As propose, for the leader's own scheduling work: it may use the headroom above
        max_pending_proposals, so a flood of client writes cannot stop results being recorded."""
        return await self.propose_internal_nowait(cmd, timeout)

    def propose_internal_nowait(self, cmd: commands_pb2.Command,
                                timeout: float = 10.0) -> asyncio.Task[commands_pb2.ApplyResult]:
        """As propose_internal, appended to the log before this returns (successive calls keep
        their order in the log while nothing waits in between). The task ends with the outcome
        whether or not anyone awaits it (a caller cancelled meanwhile leaves nothing dangling)."""
        outcome = self.driver.propose_nowait(cmds.encode(cmd, now_ms()), timeout, internal=True)
        return self.tasks.spawn(_or_empty(outcome), "internal-proposal", expected=PROPOSAL_ERRORS)

    async def read_barrier(self, timeout: float = 5.0) -> None:
        """Wait until this leader may serve a linearizable read (raftsched.seams.Proposer)."""
        await self.driver.read_barrier(timeout)

    @property
    def loop_failures(self) -> dict[str, int]:
        """Background loops and tasks of this node that raised, by name (raftsched.tasks)."""
        return dict(self.tasks.failures)

    def local_status(self) -> admin_pb2.NodeStatus:
        st = self.driver.core.status()
        role = admin_pb2.ROLE_LEARNER if self.id not in st.config.voters else _ROLES[st.role]
        contact = 0 if st.role is Role.LEADER else int((time.monotonic() - self.driver.last_leader_contact) * 1000)
        return admin_pb2.NodeStatus(
            id=self.id,
            address=self.config.listen,
            role=role,
            term=st.term,
            leader=st.leader,
            commit_index=st.commit,
            applied_index=self.driver.applied_index,
            last_log_index=st.last_index,
            last_contact_ms=contact,
            healthy=bool(st.leader),
            snapshot_index=st.first_index - 1,
            voter=self.id in st.config.voters,
            job_counts=self.sm.job_counts(),
            alarms=self.alarms,
        )

    # --- lifecycle ---

    async def run(self, stop: asyncio.Event) -> None:
        await warm_up()  # before the Raft driver: a first election must not wait on imports
        self.server = self._build_server()
        add_listen_port(self.server, self.config)
        await self.server.start()
        self.driver.start(on_fatal=lambda err: self._fail(stop, err))
        self.tasks.supervise("compaction", self._compaction_loop)
        self.tasks.supervise("loop-watch", self.loop_watch.run)
        self.tasks.supervise("promote", self._promote_when_caught_up)
        await self._start_metrics()
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        log_listening(self.config)
        await stop.wait()
        await self.shutdown()

    def _fail(self, stop: asyncio.Event, err: BaseException) -> None:
        """A part the node cannot live without failed: stop, and exit non-zero (see _main)."""
        self.failure = err
        stop.set()

    async def _promote_when_caught_up(self) -> None:
        """After --rebuild-from-peers: once this learner has caught up, ask to be a voter again."""
        committed_before: int | None = None  # the commit index one check ago
        next_note = time.monotonic() + PROMOTE_NOTE_EVERY_S
        while self.promote_when_caught_up:
            await asyncio.sleep(1.0)
            st = self.driver.core.status()
            caught_up = keeping_up(self.driver.applied_index, committed_before)
            committed_before = st.commit
            if not st.leader or not caught_up or not self.leader_address():
                if time.monotonic() >= next_note:  # say why, now and then: a learner for good is a problem
                    next_note = time.monotonic() + PROMOTE_NOTE_EVERY_S
                    log.info("node %s: not asking to be a voter yet: leader %r at %r, applied %d, commit %d",
                             self.id, st.leader, self.leader_address(), self.driver.applied_index, st.commit)
                continue
            stub = admin_pb2_grpc.AdminStub(self.forwarder.channel(self.leader_address()))
            try:
                # The leader's view, not ours: the snapshot we started from may predate our removal
                # and list us as a voter until the later changes apply (a rebuilt node took that
                # for done and stayed a learner for good, in make chaos).
                members = await stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=5)
                if self.id in {m.id for m in members.voters}:
                    promotion_done(self.config.data_dir)
                    return
                await stub.PromoteMember(admin_pb2.PromoteMemberRequest(id=self.id), timeout=60)
                log.warning("node %s: rebuilt from its peers and caught up: a voter again", self.id)
                promotion_done(self.config.data_dir)
                return
            except grpc.aio.AioRpcError as err:
                log.info("node %s: promotion after the rebuild not yet possible: %s", self.id, err.details())

    async def shutdown(self) -> None:
        await self.hasher.close()
        if self.metrics is not None:
            await self.metrics.stop()
        await self.scheduler.stop()
        await self.notifier.stop()
        if self.server is not None:
            await self.server.stop(grace=1.0)
        await self.driver.stop()
        await self.tasks.close()  # after the driver: its ready loop may still start tasks
        await self.transport.close()
        await self.forwarder.close()
        self.db.close()
        log.info("node %s stopped", self.id)

    def _build_server(self) -> grpc.aio.Server:
        from raftsched.api.admin_service import AdminService
        from raftsched.api.executor_service import ExecutorService
        from raftsched.api.scheduler_service import SchedulerService
        from raftsched.v1 import admin_pb2_grpc, executor_pb2_grpc, scheduler_pb2_grpc

        server = grpc.aio.server(options=server_options(self.config.max_message_bytes),
                                 interceptors=auth_interceptors(self.config))
        checked = CheckedServer(server, self.request_refusals)  # bodies that do not parse: INVALID_ARGUMENT
        self.transport.servicer().add_to_server(checked)
        # The servicers get narrow seams (raftsched.seams), never the Node or the Raft core.
        scheduler = SchedulerService(node=self, proposer=self, state=self.sm, scheduler=self.scheduler)
        admin = AdminService(node=self, cluster=self.driver, proposer=self, state=self.sm, backups=self,
                             election_ms=self.config.election_ms)
        scheduler_pb2_grpc.add_SchedulerServicer_to_server(scheduler, checked)
        executor_pb2_grpc.add_ExecutorServicer_to_server(ExecutorService(node=self, scheduler=self.scheduler),
                                                         checked)
        admin_pb2_grpc.add_AdminServicer_to_server(admin, checked)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, checked)
        names = [
            d.services_by_name[s].full_name
            for d, s in (
                (raft_pb2.DESCRIPTOR, "Raft"),
                (scheduler_pb2.DESCRIPTOR, "Scheduler"),
                (executor_pb2.DESCRIPTOR, "Executor"),
                (admin_pb2.DESCRIPTOR, "Admin"),
            )
        ]
        # As reflection.enable_server_reflection does for an aio server, through `checked` too.
        servicer = reflection.aio.ReflectionServicer([*names, health.SERVICE_NAME, reflection.SERVICE_NAME])
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, checked)
        checked.finish()
        return server

    # --- metrics (raftsched.metrics) ---

    def _make_metrics(self) -> Any:
        """The node's metrics when --metrics-listen is set (prometheus-client is imported only then)."""
        if not self.config.metrics_listen:
            return None
        from raftsched.metrics import NodeMetrics

        metrics = NodeMetrics(self)
        self.driver.observer = metrics
        return metrics

    async def _start_metrics(self) -> None:
        if self.metrics is not None:
            await self.metrics.start(self.config.metrics_listen)

    def backup_finished(self, *, completed: bool) -> None:
        """A backup (`raftsched snapshot save`) this node streamed: every byte sent, or not."""
        if self.metrics is not None:
            self.metrics.backup_finished(completed=completed)

    def _deliver(self, msg: Any) -> None:
        self.driver.deliver(msg)

    def _on_soft_state(self, soft: SoftState) -> None:
        self._soft_changed.set()
        self._soft_changed = asyncio.Event()
        serving = health_pb2.HealthCheckResponse.SERVING if soft.leader else health_pb2.HealthCheckResponse.NOT_SERVING
        self.tasks.spawn(self.health.set("", serving), "health")
        if self.metrics is not None:
            self.metrics.soft_state(soft)
        if soft.role is Role.LEADER:
            self.scheduler.start()
            self.notifier.start()
        else:
            self.tasks.spawn(self.scheduler.stop(), "scheduler-stop")
            halted = self.notifier.halt()  # at once: a new term may start it again before a task runs
            if halted:
                self.tasks.spawn(_settle(halted), "notify-settle")


def notify_policy(config: NodeConfig) -> RetryPolicy:
    return RetryPolicy(initial_ms=config.notify_retry_initial, max_ms=config.notify_retry_max,
                       horizon_ms=config.notify_retry_horizon, timeout_ms=config.notify_timeout)


def _most_caught_up(status: Any, me: str) -> str:
    """The voter (not `me`) whose log matches the most of ours: the best one to hand over to."""
    followers = [(m[0], p) for p, m in status.progress.items() if p != me and p in status.config.voters]
    return max(followers)[1] if followers else ""


class JoinError(Exception):
    """The cluster to join could not be asked, or does not list this node as a member."""


def join_cluster(address: str, node_id: str, timeout: float = 30.0,
                 credentials: grpc.ChannelCredentials | None = None) -> tuple[ConfigState, dict[str, str]]:
    """Learn the membership from a running member; this node must have been added first."""
    from raftsched.v1 import admin_pb2_grpc

    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        channel_cm = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
        with channel_cm as channel:
            try:
                members = admin_pb2_grpc.AdminStub(channel).ListMembers(admin_pb2.ListMembersRequest(), timeout=2)
            except grpc.RpcError as err:
                last_error = f"{err.code().name}: {err.details()}"
                time.sleep(0.5)
                continue
        every = [*members.voters, *members.learners]
        if node_id not in {m.id for m in every}:
            raise JoinError(
                f"{address} does not list {node_id} as a member: run "
                f"`raftsched member add {node_id} ADDRESS --learner` first"
            )
        conf = ConfigState(frozenset(m.id for m in members.voters), frozenset(m.id for m in members.learners))
        return conf, {m.id: m.address for m in every}
    raise JoinError(f"could not ask {address} for the members within {timeout:.0f} s ({last_error})")


_ROLES = {
    Role.FOLLOWER: admin_pb2.ROLE_FOLLOWER,
    Role.PRE_CANDIDATE: admin_pb2.ROLE_PRE_CANDIDATE,
    Role.CANDIDATE: admin_pb2.ROLE_CANDIDATE,
    Role.LEADER: admin_pb2.ROLE_LEADER,
}


def _grpc_options(config: NodeConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


# --- security: TLS credentials and the auth interceptor (raftsched.security) ---


def peer_credentials(config: NodeConfig) -> grpc.ChannelCredentials | None:
    """What this node presents on its own outgoing calls (Raft to peers, forwarding to the leader,
    status fan-out, --join): its node certificate; None in insecure mode."""
    from raftsched.security.tls import channel_credentials

    return channel_credentials(config.tls) if config.tls.enabled else None


def add_listen_port(server: grpc.aio.Server, config: NodeConfig) -> None:
    """Listen with mutual TLS (client certificate required) when TLS is configured, else in clear."""
    from raftsched.security.tls import server_credentials

    if config.tls.enabled:
        server.add_secure_port(config.listen, server_credentials(config.tls))
    else:
        server.add_insecure_port(config.listen)


def auth_interceptors(config: NodeConfig) -> list[grpc.aio.ServerInterceptor]:
    from raftsched.security.auth import build_interceptors

    return build_interceptors(tls_enabled=config.tls.enabled, tokens_file=config.tokens_file, node_id=config.id)


def log_listening(config: NodeConfig) -> None:
    if config.tls.enabled:
        log.info("node %s listening on %s (mutual TLS; CA %s)", config.id, config.listen, config.tls.ca)
    else:
        log.warning("node %s listening on %s (insecure mode: no TLS)", config.id, config.listen)
        if not is_loopback(config.listen):
            log.warning("node %s: --insecure: listening on %s WITHOUT TLS. Anyone who can reach this address can "
                        "submit and cancel jobs, register as an executor and send Raft messages. Use it only on "
                        "a network you trust entirely (docs/security.md)", config.id, config.listen)


def _setup_logging(config: NodeConfig) -> Any:
    from raftsched.logs import setup

    return setup(config.id, level=config.log_level, fmt=config.log_format)


async def _main(config: NodeConfig, log_context: Any = None, *, promote: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if os.environ.get("RAFTSCHED_TRACEMALLOC"):
        from raftsched.memtrace import MemoryTrace

        loop.add_signal_handler(signal.SIGUSR2, MemoryTrace().report)
    node = Node(config)
    node.promote_when_caught_up = promote
    if log_context is not None:
        log_context.term = lambda: node.driver.core.term  # log lines carry the term from now on
    await node.run(stop)
    if node.failure is not None:
        print(f"raftsched: error: node {config.id} stopped: {node.failure!r} (see its log)", file=sys.stderr)
        return 1
    return 0


# How a proposal may fail that its caller expects and handles (raftsched.api.errors maps them).
PROPOSAL_ERRORS = (RaftError, OutcomeUnknownError, ProposalLostError, OverloadedError)
PROMOTE_NOTE_EVERY_S = 15  # how often a rebuilt learner says why it is not asking to be a voter
TRIM_EVERY_S = 10  # give freed heap back to the OS this often (raftsched.memtrim)
GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (default 700)


def run_node(config: NodeConfig) -> int:
    """Run one scheduler node until SIGTERM/SIGINT. Returns the process exit code."""
    log_context = _setup_logging(config)
    faulthandler.enable()  # a crash in native code (RocksDB, gRPC) leaves the Python stacks in the log
    # Every request makes many short-lived objects (futures, messages); the default young
    # generation threshold (700) ran a collection every few requests. Long-lived state lives
    # in RocksDB and plain containers, so collecting far less often costs little memory.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    promote = promotion_pending(config.data_dir)  # a rebuild that was stopped before its promotion
    if config.rebuild_from_peers:
        from raftsched.rebuild import RebuildError, rebuild_from_peers

        try:
            config, promote = rebuild_from_peers(config)
        except RebuildError as err:
            print(f"raftsched: error: {err}", file=sys.stderr)
            return 1
    try:
        return asyncio.run(_main(config, log_context, promote=promote))
    except StoreError as err:
        log.error("cannot open the data directory %s: %s", config.data_dir, err)
        runbook = "see docs/operations.md, 'A corrupted or locked data directory'"
        print(f"raftsched: error: {err} ({runbook})", file=sys.stderr)
        return 1
    except JoinError as err:
        print(f"raftsched: error: {err}", file=sys.stderr)
        return 1


__all__ = ["Node", "jobs_pb2", "now_ms", "run_node"]


async def _or_empty(outcome: Awaitable[commands_pb2.ApplyResult | None]) -> commands_pb2.ApplyResult:
    result = await outcome
    return result if result is not None else commands_pb2.ApplyResult()


async def _settle(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def keeping_up(applied: int, committed_before: int | None) -> bool:
    """Whether a learner has caught up: it has applied what was committed a check ago. Not
    "applied == commit now": under steady writes a learner's apply is always a few entries
    behind the commit it hears, and a rebuilt node never asked to be a voter again (seen in a
    chaos run at 120 ops/s). The leader's PromoteMember still waits for its log to catch up."""
    return committed_before is not None and applied >= committed_before

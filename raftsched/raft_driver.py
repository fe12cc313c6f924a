"""The asyncio driver of the Raft core: ticks, steps, persists, sends and applies.

All access to the core happens on the event loop thread; a single call into the core (step,
propose, tick) never interleaves with another. Between `ready()` and `advance()` the driver does
yield: to let the ready's messages reach the wire before the disk write, to let acknowledgements
out before applying, and while the fsync runs in a worker thread. The core allows steps there (a
ready's entries stay unstable until `advance()`), and messages and proposals that arrive meanwhile
go out together in the next ready: that is the group commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import random
import time
from collections.abc import Callable, Container, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from raftsched.raft.config import ConfigChange
from raftsched.raft.core import RaftConfig, RaftCore, Status
from raftsched.raft.errors import NotLeaderError
from raftsched.raft.messages import (
    NO_NODE,
    ConfigState,
    Entry,
    EntryType,
    LeaderLost,
    Message,
    Ready,
    Role,
    SnapshotMeta,
    SoftState,
)
from raftsched.raft.refusals import Reason, RefusalLog
from raftsched.storage.raft_store import RaftStore
from raftsched.transport.peers import RaftTransport
from raftsched.transport.routes import log_refusals
from raftsched.v1 import commands_pb2

log = logging.getLogger("raftsched.raft")

# apply(entries, wanted): `wanted` holds the indexes whose results someone here waits for (a
# follower waits for none: the state machine may skip building the others' results).
ApplyFn = Callable[[list[tuple[int, bytes | None]], Container[int]], list["commands_pb2.ApplyResult | None"]]


@dataclass(slots=True)
class DriverCounters:
    """Cumulative counters of the driver's work, for the metrics and profiling."""

    proposals_refused: int = 0  # refused with OverloadedError before proposing
    wakeups: int = 0  # turns of the ready loop
    waiters_seen: int = 0  # proposals waiting, summed over the turns (mean queue = waiters_seen / wakeups)
    readies: int = 0
    synced_writes: int = 0
    unsynced_writes: int = 0
    entries_persisted: int = 0
    persist_seconds: float = 0.0
    fsync_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class ProposalLostError(Exception):
    """The entry was overwritten by another leader's: it certainly did not apply. Safe to retry."""


class OutcomeUnknownError(Exception):
    """No answer in time: the proposal may or may not apply. Retry with the same idempotency key."""


class OverloadedError(Exception):
    """Too many proposals wait for commit on this leader: refused before proposing (certainly not
    applied). The client should back off and retry."""


class LeaderMovedError(Exception):
    """This node handed leadership on while a proposal waited (certainly not applied here);
    `leader` is where to send it again ("" when not known yet)."""

    def __init__(self, leader: str) -> None:
        super().__init__(f"leadership moved to {leader or 'another node'} during this call; send it there")
        self.leader = leader


# Proposals the leader makes for its own scheduling work (assignments, results, failure detection)
# may exceed the client limit by this much, so that a flood of submits cannot starve execution.
INTERNAL_HEADROOM_MIN = 100


class SnapshotInstall(Protocol):
    """A snapshot's state, built and waiting to be switched to (see raftsched.snapshotting)."""

    def stage(self, batch: Any) -> None: ...

    def finish(self) -> None: ...


class DriverObserver(Protocol):
    """What the driver reports as it works (raftsched.metrics implements it); called on the event
    loop, so each method must be cheap."""

    def persisted(self, seconds: float, entries: int, synced: bool) -> None: ...

    def proposal_done(self, seconds: float, outcome: str) -> None: ...


class _NoObserver:
    def persisted(self, seconds: float, entries: int, synced: bool) -> None:
        pass

    def proposal_done(self, seconds: float, outcome: str) -> None:
        pass


def _expire(future: asyncio.Future[commands_pb2.ApplyResult | None], index: int, timeout: float) -> None:
    if not future.done():
        future.set_exception(OutcomeUnknownError(f"entry {index} not applied within {timeout:.0f} s"))


@dataclass(slots=True)
class _Waiter:
    term: int
    future: asyncio.Future[commands_pb2.ApplyResult | None]


class RaftDriver:
    def __init__(
        self,
        *,
        node_id: str,
        store: RaftStore,
        transport: RaftTransport,
        apply: ApplyFn,
        applied: int,
        raft_config: RaftConfig,
        tick_seconds: float,
        on_soft_state: Callable[[SoftState], None] = lambda s: None,
        on_config_entry: Callable[[int, bytes, bool], None] = lambda i, d, c: None,
        on_install_snapshot: Callable[[SnapshotMeta], SnapshotInstall] | None = None,
        max_pending_proposals: int = 10_000,
        observer: DriverObserver | None = None,
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.transport = transport
        self._apply = apply
        self.core = RaftCore(raft_config, store, random.Random(), applied=applied)
        self.tick_seconds = tick_seconds
        self._on_soft_state = on_soft_state
        self._on_config_entry = on_config_entry
        self._on_install_snapshot = on_install_snapshot
        self.bytes_since_compaction = 0
        self._persist_entries = 0
        # One thread for fsyncs: at most one is in flight, and it never touches Python state
        # the loop uses (see NodeDB.sync_wal_files).
        self._fsync_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fsync")
        self.counters = DriverCounters()
        self.max_pending_proposals = max_pending_proposals
        self.observer: DriverObserver = observer or _NoObserver()
        self._wake = asyncio.Event()
        self._waiters: dict[int, _Waiter] = {}
        self._reads: dict[int, asyncio.Future[int]] = {}
        self._read_ids = itertools.count(1)
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.last_leader_contact = time.monotonic()
        self.applied_index = applied
        hard = store.hard_state()
        self._synced_term_vote = (hard.term, hard.vote)
        # The chaos harness's `elections` checker reads this line: a term lower than one this node
        # logged before a restart means its hard state was lost.
        log.info("node %s: starting from stored term %d, vote %s, commit %d", node_id, hard.term, hard.vote or "-",
                 hard.commit)
        self._refusal_log = RefusalLog()

    # --- lifecycle ---

    def start(self, on_fatal: Callable[[BaseException], None] = lambda err: None) -> None:
        """Run the tick and ready loops. Should one fail (a bug, a disk error), the node must not
        go on half-alive: the error is logged with its traceback and `on_fatal` stops the node."""
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="raft-tick"),
            asyncio.create_task(self._ready_loop(), name="raft-ready"),
        ]

        def died(task: asyncio.Task[None]) -> None:
            if task.cancelled():
                return
            err = task.exception()
            if err is not None:
                log.critical("node %s: the Raft %s loop failed; stopping the node", self.node_id,
                             task.get_name(), exc_info=err)
                on_fatal(err)

        for task in self._tasks:
            task.add_done_callback(died)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fsync_thread.shutdown(wait=True)
        self._fail_all(OutcomeUnknownError("node stopped"))

    # --- inputs ---

    def deliver(self, msg: Message) -> None:
        """Called by the transport for every message received."""
        core = self.core
        refused_before = core.refusals.total
        core.step(msg)
        if core.refusals.total != refused_before:
            log_refusals(self.node_id, core.refusals.take_unlogged(), self._refusal_log)
            return  # changed nothing: not even the leader's last contact
        if msg.frm == core.leader and msg.frm != NO_NODE and not isinstance(msg, LeaderLost):
            self.last_leader_contact = time.monotonic()
        self._wake.set()

    def refused_counts(self) -> dict[Reason, int]:
        """Raft messages refused on this node, by reason: at the transport's boundary and by the core."""
        counts = {reason: 0 for reason in Reason}
        for counter in (self.transport.router.refusals, self.core.refusals):
            for reason, count in counter.counts.items():
                counts[reason] += count
        return counts

    async def propose(self, data: bytes, timeout: float = 10.0, *,
                      internal: bool = False) -> commands_pb2.ApplyResult | None:
        """Replicate one command; returns its apply result once applied on this node.

        Raises OverloadedError, before proposing anything, when max_pending_proposals wait already
        (internal: the leader's own scheduling work, which gets some headroom above the limit).
        """
        return await self.propose_nowait(data, timeout, internal=internal)

    def propose_nowait(self, data: bytes, timeout: float = 10.0, *,
                       internal: bool = False) -> Coroutine[Any, Any, commands_pb2.ApplyResult | None]:
        """As propose, but the entry is appended before this returns, so entries proposed by
        successive calls are in the log in call order. Always await the returned coroutine."""
        self._check_pending(internal)
        index, term = self.core.propose([data])
        loop = asyncio.get_running_loop()
        future: asyncio.Future[commands_pb2.ApplyResult | None] = loop.create_future()
        self._waiters[index] = _Waiter(term, future)
        self._wake.set()
        # A plain timer rather than wait_for(shield(...)): this is the hot path of every write,
        # and those add a task's worth of futures and callbacks to each proposal.
        timer = loop.call_later(timeout, _expire, future, index, timeout)
        return self._outcome(index, future, timer)

    async def _outcome(self, index: int, future: asyncio.Future[commands_pb2.ApplyResult | None],
                       timer: asyncio.TimerHandle) -> commands_pb2.ApplyResult | None:
        started, outcome = time.perf_counter(), "error"
        try:
            result = await future
            outcome = "applied"
            return result
        except OutcomeUnknownError:
            outcome = "unknown"
            raise
        finally:
            timer.cancel()
            self.observer.proposal_done(time.perf_counter() - started, outcome)
            if self._waiters.get(index) is not None and self._waiters[index].future is future:
                del self._waiters[index]

    @property
    def pending_proposals(self) -> int:
        return len(self._waiters)

    def _check_pending(self, internal: bool) -> None:
        limit = self.max_pending_proposals
        if internal:
            limit += max(INTERNAL_HEADROOM_MIN, limit // 10)
        if len(self._waiters) >= limit:
            self.counters.proposals_refused += 1
            raise OverloadedError(
                f"the leader has {len(self._waiters)} proposals waiting for commit (max_pending_proposals "
                f"{self.max_pending_proposals}); back off and retry")

    def propose_config(self, change: ConfigChange) -> tuple[int, int]:
        index, term = self.core.propose_config(change)
        self._wake.set()
        return index, term

    async def read_barrier(self, timeout: float = 5.0) -> None:
        """Wait until this leader may serve a linearizable read (ReadIndex, thesis §6.4)."""
        ctx = next(self._read_ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[ctx] = future
        try:
            self.core.read_index(ctx)
            self._wake.set()
            index = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise OutcomeUnknownError("could not confirm leadership (no quorum?)") from None
        finally:
            self._reads.pop(ctx, None)
        await self.wait_applied(index, timeout)

    async def wait_applied(self, index: int, timeout: float = 5.0) -> None:
        if self.applied_index >= index:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise OutcomeUnknownError(f"index {index} not applied within {timeout:.0f} s") from None

    def wake(self) -> None:
        """Something changed the core outside of step/propose: process its ready soon."""
        self._wake.set()

    @property
    def is_leader(self) -> bool:
        return self.core.role is Role.LEADER

    # --- cluster control (raftsched.seams.ClusterControl): the only way in to the core from outside ---

    def status(self) -> Status:
        return self.core.status()

    @property
    def conf(self) -> ConfigState:
        return self.core.conf

    def transfer_leader(self, target: str) -> None:
        """Hand leadership to `target` (thesis §3.10); the core decides whether it can."""
        self.core.transfer_leader(target)
        self._wake.set()

    def match_index(self, peer: str) -> int | None:
        progress = self.core.progress.get(peer) if self.core.role is Role.LEADER else None
        return progress.match if progress is not None else None

    def term_at(self, index: int) -> int:
        return self.core.log.term_or_zero(index)

    def committed_entries(self, start: int, limit: int) -> tuple[int, int, list[Entry]]:
        log_ = self.core.log
        first, commit = log_.first_index(), self.core.commit
        start = max(start, first)
        end = min(commit + 1, start + limit)
        return first, commit, (log_.entries(start, None, end) if end > start else [])

    # --- the loops ---

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self.tick_seconds
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            if loop.time() - next_tick > 10 * self.tick_seconds:
                next_tick = loop.time()  # we were paused (SIGSTOP): do not replay missed ticks
            self.core.tick()
            self._wake.set()

    async def _ready_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.counters.waiters_seen += len(self._waiters)
            self.counters.wakeups += 1
            while self.core.has_ready():
                rd = self.core.ready()
                if rd.messages:
                    self.transport.send(rd.messages)
                    if rd.entries:
                        # Let the transport put them on the wire before this thread blocks in
                        # the disk write: the followers' writes then overlap the leader's own
                        # (thesis §10.2.1; the leader counts itself only once its write is durable).
                        await asyncio.sleep(0)
                if self._persist(rd):
                    # Group commit: the fsync runs in a worker thread; meanwhile the loop keeps
                    # taking in requests and messages, which the core may step between ready()
                    # and advance() (its entries stay unstable until then), and they all go
                    # out together in the next ready.
                    await self._sync_wal()
                if rd.persisted_messages:
                    self.transport.send(rd.persisted_messages)
                    if rd.committed:
                        # Acknowledgements first: the leader waits on them, not on our apply.
                        await asyncio.sleep(0)
                self._after_persist(rd)
            # Let the transport and the servicers run before the next batch.
            await asyncio.sleep(0)

    def _persist(self, rd: Ready) -> bool:
        """Write the ready; True when an fsync must follow."""
        self.counters.readies += 1
        install = None
        if rd.snapshot is not None:
            # The state machine builds the snapshot's state beside its own; the batch below
            # switches to it together with the Raft snapshot meta (one synced write), and
            # `finish` then drops the old state. A crash anywhere leaves one or the other whole.
            assert self._on_install_snapshot is not None, "a snapshot to install, but no installer"
            install = self._on_install_snapshot(rd.snapshot)
        for entry in rd.entries:
            if entry.type is EntryType.CONFIG:
                self._on_config_entry(entry.index, entry.data, False)  # addresses are needed at once
        if rd.entries or rd.hard_state is not None or rd.snapshot is not None:
            must_sync = self._must_sync(rd)
            started = time.perf_counter()
            # Sync inline when there is nothing to batch (one entry, at most one proposal
            # waiting: a thread hand-off would only add latency) and for a rare snapshot
            # install; otherwise write now and let _sync_wal make it durable off the loop.
            inline = rd.snapshot is not None or (len(rd.entries) <= 1 and len(self._waiters) <= 1)
            self.store.save(rd.hard_state, rd.entries, rd.snapshot, sync=must_sync and inline,
                            extra=install.stage if install is not None else None)
            if install is not None:
                assert rd.snapshot is not None
                install.finish()
                self.applied_index = max(self.applied_index, rd.snapshot.index)
            elapsed = time.perf_counter() - started
            self.counters.persist_seconds += elapsed
            if must_sync:
                self.counters.synced_writes += 1
            else:
                self.counters.unsynced_writes += 1
            if not must_sync or inline:
                self.observer.persisted(elapsed, len(rd.entries), must_sync)
            self.counters.entries_persisted += len(rd.entries)
            self.bytes_since_compaction += sum(len(e.data) + 24 for e in rd.entries)
            self._persist_entries = len(rd.entries)
            return must_sync and not inline
        return False

    async def _sync_wal(self) -> None:
        started = time.perf_counter()
        await asyncio.get_running_loop().run_in_executor(self._fsync_thread, self.store.sync)
        elapsed = time.perf_counter() - started
        self.counters.fsync_seconds += elapsed
        self.observer.persisted(elapsed, self._persist_entries, True)

    def _after_persist(self, rd: Ready) -> None:
        """Everything else that must wait until the ready is durable (its messages went out)."""
        if rd.committed:
            self._apply_committed(rd)
        for read in rd.read_states:
            future = self._reads.get(read.ctx)
            if future is not None and not future.done():
                future.set_result(read.index)
        if rd.hard_state is not None:
            self._synced_term_vote = (rd.hard_state.term, rd.hard_state.vote)
        self.core.advance(rd)
        if rd.soft_state is not None:
            self._soft_state_changed(rd.soft_state)

    def _must_sync(self, rd: Ready) -> bool:
        """Entries, a snapshot, and term or vote must be durable before messages that depend on
        them go out; a commit index alone need not be (it is re-learnt from the leader), so a
        ready that only advances it is written without fsync, as etcd does."""
        if rd.entries or rd.snapshot is not None:
            return True
        hard = rd.hard_state
        return hard is not None and (hard.term, hard.vote) != (self._synced_term_vote)

    def _apply_committed(self, rd: Ready) -> None:
        batch: list[tuple[int, bytes | None]] = []
        for entry in rd.committed:
            if entry.type is EntryType.NORMAL:
                batch.append((entry.index, entry.data))
            else:
                if entry.type is EntryType.CONFIG:
                    self._on_config_entry(entry.index, entry.data, True)
                batch.append((entry.index, None))
        results = self._apply(batch, self._waiters)
        for entry, result in zip(rd.committed, results, strict=True):
            self._resolve(entry.index, entry.term, result)
        self.applied_index = rd.committed[-1].index
        self._wake_applied()

    def _resolve(self, index: int, term: int, result: commands_pb2.ApplyResult | None) -> None:
        waiter = self._waiters.pop(index, None)
        if waiter is None or waiter.future.done():
            return
        if waiter.term == term:
            waiter.future.set_result(result)
        else:
            waiter.future.set_exception(ProposalLostError(f"entry {index} was replaced by another leader"))

    def _wake_applied(self) -> None:
        if not self._applied_waiters:
            return
        still = []
        for index, future in self._applied_waiters:
            if index <= self.applied_index:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((index, future))
        self._applied_waiters = still

    def _soft_state_changed(self, soft: SoftState) -> None:
        log.info("node %s: %s in term %d, leader %s", self.node_id, soft.role.name, soft.term, soft.leader or "-")
        self.last_leader_contact = time.monotonic()
        if soft.role is not Role.LEADER:
            # ReadIndex requests die with the leadership; proposals keep waiting, since an entry
            # we appended may still commit under the next leader and we will apply it here.
            for future in self._reads.values():
                if not future.done():
                    future.set_exception(NotLeaderError(soft.leader))
        self._on_soft_state(soft)

    def _fail_all(self, error: Exception) -> None:
        for waiter in self._waiters.values():
            if not waiter.future.done():
                waiter.future.set_exception(error)
        self._waiters.clear()
        for future in self._reads.values():
            if not future.done():
                future.set_exception(error)

"""Leader-only work, the asyncio shell around the pure `SchedulerCore` (raftsched.scheduler.core).

The shell owns what the core must not touch: the executor streams (gRPC), the tasks, the clock and
the proposals. It feeds the core events (registrations, messages, closed streams, proposal
outcomes, applied job changes) and ticks it every DISPATCH_INTERVAL or sooner when woken, then
carries out its ready: proposes the commands in order, writes the messages, closes the streams.
It runs only while this node leads (started and stopped by the node on leadership changes); every
task it starts is owned by `self.tasks`, and a loop that raises is logged with its traceback,
counted (`loop_errors`, raftsched_leader_loop_errors_total) and restarted with backoff.

The decisions (promises 4, 5, 9, 10, 11) and their reasons are documented in the core.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, TypeAlias

import grpc

from raftsched.clock import now_ms
from raftsched.raft.errors import RaftError
from raftsched.raft_driver import OutcomeUnknownError, OverloadedError, ProposalLostError
from raftsched.scheduler.core import CoreConfig, Proposal, SchedulerCore
from raftsched.scheduler.corruption import CorruptionChecker
from raftsched.scheduler.ports import LeaderNode
from raftsched.scheduler.retention import Purger, RetentionPolicy
from raftsched.scheduler.screening import Refusals
from raftsched.scheduler.session import Session
from raftsched.scheduler.view import Now
from raftsched.tasks import TaskOwner
from raftsched.v1 import commands_pb2, executor_pb2, jobs_pb2

log = logging.getLogger("raftsched.scheduler")
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

DISPATCH_INTERVAL = 0.05  # seconds between ticks of the core when nothing wakes us earlier
RESEND_AFTER_MS = 2000  # an unstarted assignment missing from heartbeats this long was lost
CATCH_UP_TIMEOUT_S = 5.0  # a registration waits this long for the new leader to apply its log
OUTBOX_LIMIT = 4096  # messages queued for one executor before we consider it too slow
COALESCE_BYTES = 1 << 20  # queued messages merged into one write, at most (the executor takes 16 MiB)
EXPECTED = (RaftError, ProposalLostError, OutcomeUnknownError, OverloadedError, TimeoutError)

__all__ = ["RESEND_AFTER_MS", "LeaderScheduler", "clock_now"]


def clock_now() -> Now:
    return Now(int(time.monotonic() * 1000), now_ms())


class Stream:
    """One executor stream's outbox, and whether it was closed (by either side)."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[executor_pb2.LeaderMessage] = asyncio.Queue(OUTBOX_LIMIT)
        self.closed = asyncio.Event()

    def send(self, msg: executor_pb2.LeaderMessage) -> bool:
        """Queue `msg`; False when the outbox is full (the executor is too slow)."""
        if self.closed.is_set():
            return True
        try:
            self.outbox.put_nowait(msg)
        except asyncio.QueueFull:
            return False
        return True

    def close(self) -> None:
        self.closed.set()


class _ScheduleKick:
    """`kick()`: a schedule was created or resumed; plan again now."""

    def __init__(self, owner: LeaderScheduler) -> None:
        self._owner = owner

    def kick(self) -> None:
        self._owner.core.kick_schedules()
        self._owner.wake()


class LeaderScheduler:
    def __init__(self, node: LeaderNode) -> None:
        self.node = node
        self.sm = node.sm
        cfg = node.config
        self.refusals = Refusals(clock=time.monotonic)  # for the node's life, across leaderships
        config = CoreConfig(lease_ms=cfg.lease_ms, kill_grace_ms=cfg.kill_grace_ms,
                            executor_timeout_ms=cfg.executor_timeout_ms, resend_after_ms=RESEND_AFTER_MS,
                            quarantine_after=cfg.quarantine_after, quarantine_ms=cfg.quarantine_cooloff,
                            quarantine_max_ms=cfg.quarantine_max, poison_after=cfg.poison_after,
                            retry_rate=cfg.retry_rate, retry_burst=cfg.retry_burst)
        self.core = SchedulerCore(node.id, config, node.sm, refusals=self.refusals,
                                  members_read=node.members_support)
        self.streams: dict[tuple[str, int], Stream] = {}
        self.tasks = TaskOwner("leader")
        self._running = False
        self._kick = asyncio.Event()
        self._caught_up = asyncio.Event()  # this leader applied what was committed before its term
        self.schedules = _ScheduleKick(self)
        policy = RetentionPolicy(cfg.job_retention, cfg.idempotency_window)
        self.purger = Purger(node.sm, node.propose_internal, policy, now_ms)  # forgets old history
        self.corruption = CorruptionChecker(node.id, cfg.corrupt_check_interval / 1000, node.propose_internal,
                                            node.local_hash, node.peer_hash, node.members, node.sm.alarms)

    # --- lifecycle, driven by leadership ---

    @property
    def running(self) -> bool:
        return self._running

    @property
    def sessions(self) -> dict[str, Session]:
        return self.core.sessions

    @property
    def loop_errors(self) -> dict[str, int]:
        """Failures of each leader loop: those the supervisor restarted, and the rounds the
        retention and corruption loops logged (with their traceback) and retried themselves."""
        out = dict(self.tasks.failures)
        own = {"retention": self.purger.failures, "corruption-check": self.corruption.checks["failed"]}
        for name, failed in own.items():
            out[name] = out.get(name, 0) + failed
        return out

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self.core.became_leader(clock_now())
        self._caught_up = asyncio.Event()
        self.sm.add_listener(self._on_job_change)
        self.tasks.supervise("catch-up", self._catch_up)
        self.tasks.supervise("dispatch", self._tick_loop)
        self.tasks.supervise("retention", self.purger.run)
        if self.node.config.corrupt_check_interval:
            self.tasks.supervise("corruption-check", self.corruption.run)

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self.sm.remove_listener(self._on_job_change)
        self.core.stepped_down()
        self._flush()
        await self.tasks.stop()
        log.info("leader scheduler stopped")

    def wake(self) -> None:
        self._kick.set()

    # --- the core's clock and ready ---

    async def _catch_up(self) -> None:
        """Apply everything committed before this term (a read barrier), then let executors in:
        until then an attempt the previous leader assigned may look unknown here."""
        while True:
            try:
                await self.node.read_barrier()
                break
            except EXPECTED as err:  # no quorum yet, or leadership lost (then we are stopped)
                log.info("leader scheduler: not caught up yet: %s", err)
                await asyncio.sleep(DISPATCH_INTERVAL)
        self.core.set_caught_up()
        self._caught_up.set()
        self._flush()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0)  # Why: an Event already set is awaited without yielding the loop
            try:
                async with asyncio.timeout(DISPATCH_INTERVAL):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()
            self.core.tick(clock_now())
            self._flush()

    def _flush(self) -> None:
        """Carry out the core's ready (and whatever that makes ready at once)."""
        while True:
            rd = self.core.take_ready()
            if not rd:
                return
            for proposal in rd.proposals:
                self._start_proposal(proposal)
            for executor_id, gen, msg in rd.sends:
                stream = self.streams.get((executor_id, gen))
                if stream is not None and not stream.send(msg):
                    log.warning("executor %s: outbox full, closing its stream", executor_id)
                    stream.close()
            for key in rd.closes:
                stream = self.streams.get(key)
                if stream is not None:
                    stream.close()
            if rd.kick:
                self._kick.set()

    def _start_proposal(self, proposal: Proposal) -> None:
        if not self._running:
            self.core.proposal_done(proposal.id, False)
            return
        try:
            task = self.node.propose_internal_nowait(proposal.command)
        except EXPECTED as err:  # refused before proposing (overloaded, leadership lost)
            log.info("leader scheduler: proposal refused: %s", err)
            self.core.proposal_done(proposal.id, False)
            return
        task.add_done_callback(functools.partial(self._on_outcome, proposal.id))

    def _on_outcome(self, proposal_id: int, task: asyncio.Task[commands_pb2.ApplyResult]) -> None:
        if task.cancelled():
            self.core.proposal_done(proposal_id, False)
        elif (err := task.exception()) is not None:
            if not isinstance(err, EXPECTED):
                log.error("leader scheduler: proposal failed", exc_info=err)
            self.core.proposal_done(proposal_id, False)
        else:
            self.core.proposal_done(proposal_id, True, task.result())
        self._flush()

    def _on_job_change(self, job: jobs_pb2.Job) -> None:
        """Called inside apply: the core only notes what to do; the next flush carries it out."""
        self.core.job_changed(job)
        self._kick.set()

    # --- executor streams ---

    async def serve(self, context: Context, first: executor_pb2.ExecutorMessage) -> None:
        """Run one executor's Connect stream until it ends or this node stops leading. `first`
        is its registration, checked against the protocol's limits and the caller's identity."""
        await self._wait_caught_up(context)
        refused, gen = self.core.register(clock_now(), first)
        if refused:
            self._flush()
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"register.executor_id: {refused}")
        key = (first.register.executor_id, gen)
        stream = self.streams[key] = Stream()
        self._flush()
        writer = asyncio.get_running_loop().create_task(self._write_loop(stream, context))
        try:
            await self._read_loop(key, stream, context)
        finally:
            stream.close()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            del self.streams[key]
            self.core.stream_closed(*key)
            self._flush()

    async def _wait_caught_up(self, context: Context) -> None:
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
                await self._caught_up.wait()
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the leader has not applied its log yet; retry")
        if not self._running:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this node stopped leading; retry")

    async def _read_loop(self, key: tuple[str, int], stream: Stream, context: Context) -> None:
        closed = asyncio.get_running_loop().create_task(stream.closed.wait())
        read: asyncio.Future[Any] | None = None
        try:
            while True:
                read = asyncio.ensure_future(context.read())
                done, _ = await asyncio.wait({read, closed}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    return
                msg = read.result()
                if msg is grpc.aio.EOF:
                    return
                problem = self.core.message(clock_now(), key[0], key[1], msg)
                self._flush()
                if problem:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        finally:
            closed.cancel()
            if read is not None:  # ended by the session closing or by the call's cancellation
                read.cancel()
                read.add_done_callback(_retrieved)  # it may fail meanwhile (a frame that does not parse)

    @staticmethod
    async def _write_loop(stream: Stream, context: Context) -> None:
        held: executor_pb2.LeaderMessage | None = None
        while True:
            msg = held if held is not None else await stream.outbox.get()
            msg, held = _coalesce(msg, stream.outbox)
            await context.write(msg)

    # --- views ---

    def executor_view(self) -> list[jobs_pb2.ExecutorInfo]:
        return self.core.executor_view(clock_now())

    def waiting_reason(self, job_id: str) -> str:
        return self.core.budget_reason() if job_id in self.core.budget_held else ""

    def retries_waiting(self) -> int:
        return len(self.core.budget_held)


def _coalesce(first: executor_pb2.LeaderMessage, outbox: asyncio.Queue[executor_pb2.LeaderMessage],
              ) -> tuple[executor_pb2.LeaderMessage, executor_pb2.LeaderMessage | None]:
    """`first` and the messages queued behind it, as one message for one write (a stream write
    was 14 % of the leader's samples under end-to-end load, one per assignment or ack), and the
    message that had to stay out, if any.

    Merging keeps the executor's view in order: it applies a message's lease, acks, cancels,
    then assignments, and every field but the lease ack is a list of attempts. A later cancel
    must not overtake an earlier assignment (it could name the same attempt), so a message
    with cancels starts the next write. A later heartbeat ack replaces an earlier one: acks
    go out in heartbeat order, and the later one grants the longer lease."""
    merged: executor_pb2.LeaderMessage | None = None
    size = first.ByteSize()
    while not outbox.empty():
        following = outbox.get_nowait()
        size += following.ByteSize()
        if following.cancel or size > COALESCE_BYTES:
            return (merged or first), following
        if merged is None:
            merged = executor_pb2.LeaderMessage()
            merged.CopyFrom(first)  # queued messages may be shared with other streams
        merged.MergeFrom(following)
    return (merged or first), None


def _retrieved(read: asyncio.Future[Any]) -> None:
    """Collect the outcome of a read nobody awaits any more: its stream is over whatever it says
    (found by tests/fuzz: asyncio logged "Task exception was never retrieved" with a traceback)."""
    if not read.cancelled():
        read.exception()

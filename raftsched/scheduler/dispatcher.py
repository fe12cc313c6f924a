"""Leader-only work: assigning queued jobs to executors, serving executor streams, detecting dead
executors and timed-out attempts. It changes state only through proposals, and runs only while
this node leads (started and stopped by the node on leadership changes).

Failure detection (SPEC promises 5, 9, 10): an executor is declared down only when it has not been
heard from for the executor timeout, and never before one executor timeout has passed since this
leader was elected, so that executors of a failed-over cluster have time to reconnect.

Executor streams (issue 14): a registration reaches `serve` checked against the protocol's limits
and the caller's identity (raftsched.api.executor_service). One session per executor id: a second
registration under the id of a live session is refused with ALREADY_EXISTS, and disturbs nothing.
A session is live until it has been silent for the lease plus the kill grace (`takeover_s`): by
then the executor's lease has lapsed and its tasks were killed (promise 9), so an executor that
restarted before its old stream was noticed dead gets its id back after at most that long, and
usually at once (a dead process's connection closes, and its stream with it). Reports are
screened before anything is proposed (raftsched.scheduler.screening): only attempts the executor
holds, or held and lost, reach the log. Nothing is judged before this leader has applied what
was committed before its term.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from raftsched.scheduler.corruption import CorruptionChecker
from raftsched.scheduler.retention import Purger, RetentionPolicy
from raftsched.scheduler.schedules import ScheduleFirer
from raftsched.scheduler.screening import (
    Holding,
    Kind,
    Reason,
    Refusal,
    Refusals,
    check_message,
    describe,
    holding,
    result_end_ok,
)
from raftsched.scheduler.sessions import ExecutorSession
from raftsched.state import commands as cmds
from raftsched.state.lifecycle import ERROR_MAX_CHARS
from raftsched.state.validate import ValidationError
from raftsched.v1 import executor_pb2, jobs_pb2

if TYPE_CHECKING:
    from raftsched.node import Node

log = logging.getLogger("raftsched.scheduler")
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

DISPATCH_INTERVAL = 0.05  # seconds between scheduling rounds when nothing wakes us earlier
WATCHDOG_INTERVAL = 0.1
QUEUED_PER_ROUND = 2048  # queued jobs one round looks at, at most (a bounded cost per round)
ROUNDS_IN_FLIGHT = 4  # assignment batches being replicated at once
RESEND_AFTER_MS = 2000  # an unstarted assignment missing from heartbeats this long was lost
REPORTS_IN_FLIGHT = 8  # report batches of one executor being replicated at once
CATCH_UP_TIMEOUT_S = 5.0  # a registration waits this long for the new leader to apply its log
TERMINAL = {
    jobs_pb2.JOB_STATE_SUCCEEDED,
    jobs_pb2.JOB_STATE_FAILED,
    jobs_pb2.JOB_STATE_CANCELLED,
    jobs_pb2.JOB_STATE_SKIPPED,
}


def now_ms() -> int:
    return int(time.time() * 1000)


class LeaderScheduler:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.sm = node.sm
        self.sessions: dict[str, ExecutorSession] = {}
        self.last_seen: dict[str, float] = {}  # executor -> monotonic time of its last message
        self.elected_at = 0.0
        self._kick = asyncio.Event()
        # Jobs in an assignment batch that is in the log but not yet applied: job -> (executor,
        # slots). A round skips them, and counts their slots busy (also for a moment after the
        # batch applied, which only under-uses a slot until the next round).
        self._assigning: dict[str, tuple[str, int]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._timeout_s = node.config.executor_timeout_ms / 1000
        # A live session's id goes to a new registration only after this much silence (see above).
        self.takeover_s = (node.config.lease_ms + node.config.kill_grace_ms) / 1000
        self.refusals = Refusals()  # what executors sent that was refused, for the node's life
        self._caught_up = asyncio.Event()  # this leader applied what was committed before its term
        self.schedules = ScheduleFirer(node)  # fires recurring schedules while this node leads
        policy = RetentionPolicy(node.config.job_retention, node.config.idempotency_window)
        self.purger = Purger(node.sm, node.propose_internal, policy, now_ms)  # forgets old history
        self.corruption = CorruptionChecker(node.id, node.config.corrupt_check_interval / 1000, node.propose_internal,
                                            node.local_hash, node.peer_hash, node.members, node.sm.alarms)

    # --- lifecycle, driven by leadership ---

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        if self.running:
            return
        self.elected_at = time.monotonic()
        self.last_seen.clear()
        self._caught_up = asyncio.Event()
        self.sm.add_listener(self._on_job_change)
        self._tasks = [
            asyncio.create_task(self._catch_up(), name="catch-up"),
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
            asyncio.create_task(self.purger.run(), name="retention"),
        ]
        if self.node.config.corrupt_check_interval:
            self._tasks.append(asyncio.create_task(self.corruption.run(), name="corruption-check"))
        self.schedules.start()
        log.info("leader scheduler started; executors have %.1f s to reconnect", self._timeout_s)

    async def stop(self) -> None:
        if not self.running:
            return
        tasks, self._tasks = self._tasks, []
        self.sm.remove_listener(self._on_job_change)
        await self.schedules.stop()
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("leader scheduler stopped")

    # --- executor streams ---

    async def _catch_up(self) -> None:
        """Apply everything committed before this term (a read barrier), then let executors in:
        until then an attempt the previous leader assigned may look unknown here."""
        while not self._caught_up.is_set():
            try:
                await self.node.driver.read_barrier()
            except Exception as err:  # no quorum yet, or leadership lost (then we are stopped)
                log.info("leader scheduler: not caught up yet: %s", err)
                await asyncio.sleep(DISPATCH_INTERVAL)
            else:
                self._caught_up.set()

    async def serve(self, context: Context, first: executor_pb2.ExecutorMessage) -> None:
        """Run one executor's Connect stream until it ends or this node stops leading. `first`
        is its registration, checked against the protocol's limits and the caller's identity."""
        await self._wait_caught_up(context)
        session = ExecutorSession(first.register)
        refused = self._claim(session)
        if refused:
            self.refusals.add(Refusal(Kind.REGISTER, Reason.DUPLICATE, session.id, refused))
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"register.executor_id: {refused}")
        # What we believe it runs, taken before any await: assignments made from here on go to
        # the new session and must not be mistaken for attempts the executor lost.
        held = {(r.job_id, r.attempt) for r in self.sm.attempts_on(session.id)}
        self.last_seen[session.id] = time.monotonic()
        workers = [
            asyncio.create_task(self._write_loop(session, context)),
            asyncio.create_task(self._report_loop(session)),
        ]
        try:
            await self._register(session, first, held)
            self._kick.set()
            await self._read_loop(session, context)
        finally:
            session.close()
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self.sessions.get(session.id) is session:
                del self.sessions[session.id]
            log.info("executor %s: stream closed", session.id)

    async def _wait_caught_up(self, context: Context) -> None:
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
                await self._caught_up.wait()
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the leader has not applied its log yet; retry")
        if not self.running:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this node stopped leading; retry")

    def _claim(self, session: ExecutorSession) -> str:
        """Make `session` the one of its id, with no await in between; "" when done, else why not:
        another session of that id is live (heard from within `takeover_s`)."""
        old = self.sessions.get(session.id)
        if old is not None and old.open:
            silent = old.silent_for(time.monotonic())
            if silent < self.takeover_s:
                return (f"executor {session.id} is connected already (heard from {silent:.1f} s ago); a second "
                        f"registration under its id is refused. An executor that restarted gets its id back "
                        f"once the old stream closes or has been silent for {self.takeover_s:.1f} s: retry")
            log.warning("executor %s: a new registration replaces its session, silent for %.1f s",
                        session.id, silent)
        if old is not None:
            old.close()
        self.sessions[session.id] = session  # Why now: a concurrent registration must see it taken
        return ""

    async def _register(
        self, session: ExecutorSession, first: executor_pb2.ExecutorMessage, held: set[tuple[str, int]]
    ) -> None:
        reg = first.register
        info = self.sm.executor(session.id)
        changed = (
            info is None
            or info.state == jobs_pb2.EXECUTOR_STATE_DOWN
            or info.slots != session.slots
            or dict(info.labels) != session.labels
            or set(info.handlers) != session.handlers
        )
        if changed:
            await self.node.propose_internal(
                cmds.executor_up(session.id, session.slots, session.labels, session.handlers))
        if session.draining:
            await self._drain(session.id)
        session.send(executor_pb2.LeaderMessage(leader_id=self.node.id))
        self._cancel_stale(session, reg.running)
        if reg.unacked:
            session.reports.put_nowait(executor_pb2.ExecutorMessage(finished=reg.unacked))
        # Fence what it lost before reading its heartbeat: the heartbeat would otherwise see those
        # attempts still current and unreported, and re-send them (an assignment "lost in flight")
        # while their end commits, and then their next attempt would run beside them.
        await self._fence_lost(session, held, reg)
        if first.HasField("heartbeat"):
            self._on_heartbeat(session, first.heartbeat)
        log.info("executor %s registered: %d slots, labels %s", session.id, session.slots, session.labels)

    async def _fence_lost(
        self, session: ExecutorSession, held: set[tuple[str, int]], reg: executor_pb2.Register
    ) -> None:
        """Attempts we think it holds but it neither runs nor has a result for (it restarted, or
        an assignment was lost in flight) end FENCED and are retried; otherwise they would stay
        ASSIGNED or RUNNING forever while the executor is alive and well."""
        reported = {(r.job_id, r.attempt) for r in reg.running} | {(f.job_id, f.attempt) for f in reg.unacked}
        lost = sorted(held - reported)
        if not lost:
            return
        log.warning("executor %s re-registered without %d of its attempts; retrying them", session.id, len(lost))
        items = [
            cmds.finished_item(job, attempt, jobs_pb2.ATTEMPT_END_FENCED,
                               exit_code=-1, error="the executor re-registered without this attempt")
            for job, attempt in lost
        ]
        await self.node.propose_internal(cmds.finished(session.id, items))

    async def _read_loop(self, session: ExecutorSession, context: Context) -> None:
        closed = asyncio.create_task(session.closed.wait())
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
                problem = self._on_message(session, msg)
                if problem:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        finally:
            closed.cancel()
            if read is not None:  # ended by the session closing or by the call's cancellation
                read.cancel()
                read.add_done_callback(_retrieved)  # it may fail meanwhile (a frame that does not parse)

    def _on_message(self, session: ExecutorSession, msg: executor_pb2.ExecutorMessage) -> str:
        """Take one message in; returns why the stream must end ("" when it goes on)."""
        now = time.monotonic()
        self.last_seen[session.id] = now
        session.heard(now)
        try:
            check_message(msg)
        except ValidationError as err:
            self.refusals.add(Refusal(Kind.MESSAGE, Reason.INVALID, session.id, str(err)))
            return str(err)
        if msg.HasField("heartbeat"):
            self._on_heartbeat(session, msg.heartbeat)
        if msg.started or msg.finished:
            try:
                session.reports.put_nowait(msg)
            except asyncio.QueueFull:
                log.warning("executor %s: too many unreported results, closing its stream", session.id)
                session.close()
        return ""

    def _on_heartbeat(self, session: ExecutorSession, hb: executor_pb2.Heartbeat) -> None:
        lease_ms = self.node.config.lease_ms
        session.send(executor_pb2.LeaderMessage(heartbeat_ack=executor_pb2.HeartbeatAck(seq=hb.seq, lease_ms=lease_ms)))
        session.grant_lease()
        running = {(r.job_id, r.attempt) for r in hb.running}
        session.forget_dead(running)
        self._cancel_stale(session, hb.running)
        self._resend_lost_assignments(session, running)
        if hb.draining and not session.draining:
            session.draining = True
            asyncio.get_running_loop().create_task(self._drain(session.id))

    async def _drain(self, executor_id: str) -> None:
        info = self.sm.executor(executor_id)
        if info is not None and info.state != jobs_pb2.EXECUTOR_STATE_DRAINING:
            with contextlib.suppress(Exception):
                await self.node.propose_internal(cmds.drain(executor_id))

    def _cancel_stale(self, session: ExecutorSession, running: Any) -> None:
        """Kill at once what the executor runs but does not hold now (fencing); what it never held
        is killed too, and counted as refused."""
        current = self._current_on(session.id)
        stale = [ref for ref in running if (ref.job_id, ref.attempt) not in current]
        if stale:
            for ref in stale:
                self._judge(session, Kind.RUNNING, ref.job_id, ref.attempt)
            log.info("executor %s: cancelling %d stale attempts", session.id, len(stale))
            session.cancel(stale, self._slots_of(stale))

    def _current_on(self, executor_id: str) -> set[tuple[str, int]]:
        """The attempts `executor_id` holds now (current, given to it), as (job, attempt)."""
        return {(r.job_id, r.attempt) for r in self.sm.attempts_on(executor_id)}

    def _judge(self, session: ExecutorSession, kind: Kind, job_id: str, attempt: int) -> Holding:
        """Whether the executor holds an attempt it reports on; refusals are counted here."""
        job = self.sm.get_job(job_id)
        held = holding(job, attempt, session.id)
        if held is Holding.NEVER:
            reason = Reason.UNKNOWN_JOB if job is None else Reason.NOT_HELD
            self.refusals.add(Refusal(kind, reason, session.id, describe(job_id, attempt, job)))
        return held

    def _screen_reports(self, session: ExecutorSession, started: list[Any], finished: list[Any],
                        ) -> tuple[list[Any], list[Any]]:
        """The reports that may be proposed: on attempts the executor holds, and results of
        attempts it held and lost (recorded as stale at apply). Of the rest, a started attempt is
        cancelled and a result acknowledged (the executor forgets it); see screening."""
        current = self._current_on(session.id)
        keep_started, cancel = [], []
        for ref in started:
            if (ref.job_id, ref.attempt) in current:
                keep_started.append(ref)
            else:  # lost since (dropped: apply would refuse it) or never held (refused)
                self._judge(session, Kind.STARTED, ref.job_id, ref.attempt)
                cancel.append(jobs_pb2.AttemptRef(job_id=ref.job_id, attempt=ref.attempt))
        keep_finished, forget = [], []
        for item in finished:
            if not result_end_ok(item):
                detail = f"{item.job_id[:100]}/{item.attempt}: end {item.end} is not a result"
                self.refusals.add(Refusal(Kind.FINISHED, Reason.BAD_END, session.id, detail))
                forget.append(jobs_pb2.AttemptRef(job_id=item.job_id, attempt=item.attempt))
            elif ((item.job_id, item.attempt) in current
                  or self._judge(session, Kind.FINISHED, item.job_id, item.attempt) is not Holding.NEVER):
                keep_finished.append(item)
            else:
                forget.append(jobs_pb2.AttemptRef(job_id=item.job_id, attempt=item.attempt))
        if cancel:
            session.cancel(cancel, self._slots_of(cancel))
        if forget:
            session.send(executor_pb2.LeaderMessage(acked=forget))
        return keep_started, keep_finished

    def _slots_of(self, refs: list[Any]) -> dict[str, int]:
        """job id -> its slots, for anything with a job_id (attempt refs, results)."""
        jobs = (self.sm.get_job(r.job_id) for r in refs)
        return {job.id: job.spec.slots or 1 for job in jobs if job is not None}


    def _finishing_slots(self, session: ExecutorSession) -> int:
        """Slots of attempts the executor reported ended whose results have not applied yet: the
        state machine still counts them in use, the executor no longer does."""
        return sum(n for (job_id, attempt), n in session.finishing.items()
                   if self._is_current(job_id, attempt, session.id))

    def _resend_lost_assignments(self, session: ExecutorSession, running: set[tuple[str, int]]) -> None:
        """An assignment not yet started and missing from the heartbeat a while after it was
        made was lost on the way (a stream cut at the wrong moment): send it again. Executors
        ignore duplicates of what they run or hold."""
        cutoff = now_ms() - RESEND_AFTER_MS
        resend = []
        for ref in self.sm.attempts_on(session.id):
            if (ref.job_id, ref.attempt) in running:
                continue
            job = self.sm.get_job(ref.job_id)
            if job is None or job.state != jobs_pb2.JOB_STATE_ASSIGNED or job.attempts[-1].assigned_ms > cutoff:
                continue
            resend.append(executor_pb2.Assignment(job_id=job.id, attempt=ref.attempt, spec=job.spec))
        if resend:
            log.info("executor %s: re-sending %d assignments it does not report", session.id, len(resend))
            session.send(executor_pb2.LeaderMessage(assign=resend))

    def _is_current(self, job_id: str, attempt: int, executor_id: str) -> bool:
        job = self.sm.get_job(job_id)
        if job is None or job.state in TERMINAL or not job.attempts:
            return False
        last = job.attempts[-1]
        return last.number == attempt and last.executor == executor_id and last.end == jobs_pb2.ATTEMPT_END_UNSPECIFIED

    async def _write_loop(self, session: ExecutorSession, context: Context) -> None:
        while True:
            msg = await session.outbox.get()
            await context.write(msg)

    async def _report_loop(self, session: ExecutorSession) -> None:
        """Replicate started/finished reports in batches, then acknowledge the results. Batches
        are pipelined: each is appended to the log at once, in arrival order (so an attempt's
        start always precedes its end in the log), and the next is taken while it commits."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                batch = [await session.reports.get()]
                while not session.reports.empty():
                    batch.append(session.reports.get_nowait())
                while len(in_flight) >= REPORTS_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                started, finished = self._screen_reports(
                    session, [ref for m in batch for ref in m.started], [item for m in batch for item in m.finished])
                if not started and not finished:
                    continue
                try:
                    outcomes = self._propose_report(session, started, finished)
                except Exception as err:  # refused before proposing: the executor re-reports later
                    self._report_failed(session, err)
                    return
                task = asyncio.create_task(self._confirm_report(session, outcomes, finished))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        finally:
            for task in in_flight:
                task.cancel()

    def _propose_report(self, session: ExecutorSession, started: list[Any], finished: list[Any],
                        ) -> list[asyncio.Task[Any]]:
        """Append the report's commands to the log now; returns what to await for their outcome."""
        commands = []
        if started:
            commands.append(cmds.started(session.id, [(s.job_id, s.attempt) for s in started]))
        if finished:
            items = [
                cmds.finished_item(f.job_id, f.attempt, f.end, exit_code=f.exit_code,
                                   error=f.error[:ERROR_MAX_CHARS], output_tail=f.output_tail)
                for f in finished
            ]
            commands.append(cmds.finished(session.id, items))
        outcomes = [self.node.propose_internal_nowait(command) for command in commands]
        if finished:
            # The executor has freed these slots already: dispatch may refill them while the
            # results commit (see ExecutorSession.finishing).
            slots = self._slots_of(finished)
            session.finishing.update({(f.job_id, f.attempt): slots.get(f.job_id, 1) for f in finished})
            self._kick.set()
        return outcomes

    async def _confirm_report(self, session: ExecutorSession, outcomes: list[asyncio.Task[Any]],
                              finished: list[Any]) -> None:
        try:
            await asyncio.gather(*outcomes)
        except Exception as err:  # a lost proposal: the executor re-reports after reconnecting
            self._report_failed(session, err)
            return
        finally:
            for f in finished:
                session.finishing.pop((f.job_id, f.attempt), None)
        if finished:
            acked = [jobs_pb2.AttemptRef(job_id=f.job_id, attempt=f.attempt) for f in finished]
            session.send(executor_pb2.LeaderMessage(acked=acked))
            self._kick.set()

    def _report_failed(self, session: ExecutorSession, err: Exception) -> None:
        if session.open:
            log.warning("executor %s: could not record results: %s", session.id, err)
        session.close()

    # --- dispatching ---

    def _on_job_change(self, job: jobs_pb2.Job) -> None:
        """Called inside apply: only notes what to do, never proposes."""
        if job.state == jobs_pb2.JOB_STATE_QUEUED:
            self._kick.set()
        elif job.state in TERMINAL:
            self._kick.set()
            if job.schedule_id:  # overlap policies look at the schedule's last job
                self.schedules.kick()
            last = job.attempts[-1] if job.attempts else None
            if last is not None and last.end == jobs_pb2.ATTEMPT_END_CANCELLED and last.executor:
                session = self.sessions.get(last.executor)
                if session is not None:
                    ref = jobs_pb2.AttemptRef(job_id=job.id, attempt=last.number)
                    session.cancel([ref], {job.id: job.spec.slots or 1})

    async def _dispatch_loop(self) -> None:
        """Rounds are pipelined: a round appends its batch to the log at once and the next may
        start while it commits, up to ROUNDS_IN_FLIGHT batches."""
        rounds: set[asyncio.Task[None]] = set()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DISPATCH_INTERVAL):
                        await self._kick.wait()
                self._kick.clear()
                while len(rounds) >= ROUNDS_IN_FLIGHT:
                    await asyncio.wait(rounds, return_when=asyncio.FIRST_COMPLETED)
                try:
                    started = self._start_round()
                except Exception as err:  # refused before proposing (overloaded, leadership lost)
                    log.info("dispatch round failed: %s", err)
                    await asyncio.sleep(DISPATCH_INTERVAL)
                    continue
                if started is not None:
                    task = asyncio.create_task(self._finish_round(*started))
                    rounds.add(task)
                    task.add_done_callback(rounds.discard)
        finally:
            for task in rounds:
                task.cancel()

    def _start_round(self) -> tuple[list[tuple[str, int, str]], asyncio.Task[Any]] | None:
        """Match queued jobs to free slots and append the batch to the log (None: nothing to do)."""
        sessions = [s for s in self.sessions.values() if s.can_take_work() and self._accepting(s.id)]
        if not sessions:
            return None
        assigning: dict[str, int] = {}
        for executor_id, slots in self._assigning.values():
            assigning[executor_id] = assigning.get(executor_id, 0) + slots
        free = {s.id: s.slots - self.sm.slots_in_use(s.id) - s.dying_slots() + self._finishing_slots(s)
                - assigning.get(s.id, 0) for s in sessions}
        if max(free.values()) <= 0:
            return None
        queued = (job for job in self.sm.iter_queued(now_ms()) if job.id not in self._assigning)
        matched = self._match(queued, sessions, free)
        if not matched:
            return None
        items = [(job_id, attempt, executor_id) for job_id, attempt, executor_id, _ in matched]
        outcome = self.node.propose_internal_nowait(cmds.assign(items))
        for job_id, _, executor_id, slots in matched:
            self._assigning[job_id] = (executor_id, slots)
        return items, outcome

    async def _finish_round(self, items: list[tuple[str, int, str]], outcome: asyncio.Task[Any]) -> None:
        try:
            await outcome
        except Exception as err:  # a lost proposal or leadership loss: a later round retries
            log.info("dispatch round failed: %s", err)
        else:
            self._push_assignments(items)
        finally:
            for job_id, _, _ in items:
                self._assigning.pop(job_id, None)
        self._kick.set()  # more may be waiting

    def _accepting(self, executor_id: str) -> bool:
        info = self.sm.executor(executor_id)
        return info is not None and info.state == jobs_pb2.EXECUTOR_STATE_CONNECTED

    @staticmethod
    def _match(
        jobs: Iterable[jobs_pb2.Job], sessions: list[ExecutorSession], free: dict[str, int]
    ) -> list[tuple[str, int, str, int]]:
        """(job, attempt, executor, slots) for the jobs that fit, taken in the order given
        (priority, then submit order); each on the freest executor that accepts it. Stops once no
        slot is free or QUEUED_PER_ROUND jobs were looked at. Reads the jobs only."""
        items = []
        for looked, job in enumerate(jobs):
            if looked >= QUEUED_PER_ROUND or max(free.values()) <= 0:
                break
            need = job.spec.slots or 1
            fits = [s for s in sessions if free[s.id] >= need and s.accepts(job.spec)]
            if not fits:
                continue
            best = max(fits, key=lambda s: (free[s.id], s.id))
            free[best.id] -= need
            attempt = (job.attempts[-1].number if job.attempts else 0) + 1
            items.append((job.id, attempt, best.id, need))
        return items

    def _push_assignments(self, items: list[tuple[str, int, str]]) -> None:
        by_executor: dict[str, list[executor_pb2.Assignment]] = {}
        for job_id, attempt, executor_id in items:
            if not self._is_current(job_id, attempt, executor_id):
                continue  # refused at apply (cancelled meanwhile, executor gone)
            job = self.sm.get_job(job_id)
            assert job is not None
            by_executor.setdefault(executor_id, []).append(
                executor_pb2.Assignment(job_id=job_id, attempt=attempt, spec=job.spec)
            )
        for executor_id, assignments in by_executor.items():
            session = self.sessions.get(executor_id)
            if session is not None:
                session.send(executor_pb2.LeaderMessage(assign=assignments))

    # --- failure detection and timeouts ---

    async def _watchdog_loop(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            try:
                await self._expire_attempts()
                await self._detect_dead_executors()
            except Exception as err:
                log.info("watchdog round failed: %s", err)

    async def _expire_attempts(self) -> None:
        refs = self.sm.timed_out(now_ms())
        if not refs:
            return
        for ref in refs:
            job = self.sm.get_job(ref.job_id)
            session = self.sessions.get(job.attempts[-1].executor) if job and job.attempts else None
            if session is not None and job is not None:
                session.cancel([ref], {job.id: job.spec.slots or 1})
        await self.node.propose_internal(cmds.timed_out([(r.job_id, r.attempt) for r in refs]))

    async def _detect_dead_executors(self) -> None:
        now = time.monotonic()
        if now - self.elected_at < self._timeout_s:
            return  # a new leader first gives every executor time to reconnect
        for info in self.sm.executors():
            if info.state == jobs_pb2.EXECUTOR_STATE_DOWN:
                continue
            silent = now - self.last_seen.get(info.id, self.elected_at)
            if silent > self._timeout_s:
                log.warning("executor %s: silent for %.1f s, declaring it down", info.id, silent)
                session = self.sessions.get(info.id)
                if session is not None:
                    session.close()
                await self.node.propose_internal(cmds.executor_down(info.id, f"no heartbeat for {silent:.1f} s"))

    # --- views ---

    def executor_view(self) -> list[jobs_pb2.ExecutorInfo]:
        now = time.monotonic()
        lease_s = self.node.config.lease_ms / 1000
        out = []
        for info in self.sm.executors():
            view = jobs_pb2.ExecutorInfo()
            view.CopyFrom(info)
            session = self.sessions.get(info.id)
            seen = self.last_seen.get(info.id)
            silent = session is None or seen is None or now - seen > 2.0
            if info.state == jobs_pb2.EXECUTOR_STATE_CONNECTED and silent:
                view.state = jobs_pb2.EXECUTOR_STATE_DISCONNECTED
            if seen is not None:
                view.last_seen_ms = now_ms() - int((now - seen) * 1000)
            if session is not None and session.lease_granted_at:
                view.lease_remaining_ms = max(0, int((session.lease_granted_at + lease_s - now) * 1000))
            view.running.extend(self.sm.attempts_on(info.id))
            view.free_slots = max(0, info.slots - self.sm.slots_in_use(info.id))
            out.append(view)
        return out


def _retrieved(read: asyncio.Future[Any]) -> None:
    """Collect the outcome of a read nobody awaits any more: its stream is over whatever it says
    (found by tests/fuzz: asyncio logged "Task exception was never retrieved" with a traceback)."""
    if not read.cancelled():
        read.exception()

"""The leader's scheduling decisions as a pure core (no I/O, no clock, no await).

Like the Raft core (`raftsched.raft.core`), it is driven from outside and says what to do:

    events   became_leader, caught_up, register, message (heartbeat, started, finished),
             stream_closed, proposal_done (a proposal's outcome), job_changed (after apply),
             kick_schedules, and tick(now)
    ready    `take_ready()`: commands to propose (in order: each is appended to the log before the
             next), messages to send to executors, streams to close, and whether to tick soon

Every event carries its `Now` (monotonic ms for sessions and leases, the leader's wall clock for
deadlines and schedules). The state machine is read through `StateView`. The asyncio shell
(`raftsched.scheduler.dispatcher`) owns the streams, the tasks and the clock; the simulation
(`tests/scheduler/sim`) drives this same core with simulated time.

Failure detection (SPEC promises 5, 9, 10): an executor is declared down only when it has not been
heard from for the executor timeout, and never before one executor timeout has passed since this
leader was elected, so that executors of a failed-over cluster have time to reconnect.

One session per executor id: a second registration under the id of a live session is refused,
and disturbs nothing. A session is live until it has been silent for the lease plus the kill grace
(`takeover_ms`): by then the executor's lease has lapsed and its tasks were killed (promise 9).
The same agent process reconnecting (its registration carries the live session's `incarnation`)
replaces that session at once: it holds the same tasks under the same lease.
Reports are screened before anything is proposed (`screening`): only attempts the executor holds,
or held and lost, reach the log. Nothing is judged before `caught_up` (this leader applied what
was committed before its term).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from raftsched.jobstates import TERMINAL
from raftsched.scheduler.bugs import Bug
from raftsched.scheduler.corebase import CoreBase, CoreConfig, Outcome, Proposal, Ready, log
from raftsched.scheduler.dispatch import Dispatch
from raftsched.scheduler.firer import ScheduleFirer
from raftsched.scheduler.reports import Reports
from raftsched.scheduler.screening import Kind, Reason, Refusal, check_message
from raftsched.scheduler.session import Key, Session
from raftsched.scheduler.view import Now
from raftsched.scheduler.watchdog import Watchdog
from raftsched.state import commands as cmds
from raftsched.state.validate import ValidationError
from raftsched.v1 import commands_pb2, executor_pb2, jobs_pb2

J = jobs_pb2
__all__ = ["CoreBase", "CoreConfig", "Outcome", "Proposal", "Ready", "SchedulerCore"]


class SchedulerCore(Reports, Dispatch, Watchdog, ScheduleFirer):
    """The scheduling core: the events and the tick (the parts are in their own modules)."""

    # --- leadership --------------------------------------------------------------------------------

    def became_leader(self, now: Now) -> None:
        self.now = now
        self.leading = True
        self.caught_up = False
        self.elected_at = now.mono
        self.last_seen.clear()
        self._assigning.clear()
        self._rounds = self._watch_in_flight = self._schedules_in_flight = 0
        self._downing.clear()
        self._containing.clear()
        self.budget_held.clear()
        self._timed_out.clear()
        self.elected_wall = now.wall
        self._waiting.clear()
        self._schedule_wake, self._schedules_kicked = 0, True
        self._pushed.clear()
        log.info("leader scheduler started; executors have %.1f s to reconnect",
                 self.config.executor_timeout_ms / 1000)

    def stepped_down(self) -> None:
        self.leading = False
        self.caught_up = False
        for session in list(self.sessions.values()):
            self._close(session)
        self.sessions.clear()
        self._waiting.clear()

    def set_caught_up(self) -> None:
        self.caught_up = True
        self._kick()

    # --- executor streams --------------------------------------------------------------------------

    def register(self, now: Now, first: executor_pb2.ExecutorMessage) -> tuple[str, int]:
        """A stream's registration, checked already against the protocol's limits and identity.
        Returns ("", stream gen) when taken, else (why it is refused, 0): ALREADY_EXISTS."""
        self.now = now
        self._gens += 1
        session = Session.of(first.register, self._gens, now.mono)
        refused = self._claim(session)
        if refused:
            self.refusals.add(Refusal(Kind.REGISTER, Reason.DUPLICATE, session.id, refused))
            return refused, 0
        # What we believe it runs, read before anything is proposed: assignments made from here on
        # go to the new session and must not be mistaken for attempts the executor lost.
        held = {(r.job_id, r.attempt) for r in self.view.attempts_on(session.id)}
        self.last_seen[session.id] = now.mono
        self._register(session, first, held)
        return "", session.gen

    def _claim(self, session: Session) -> str:
        """Make `session` the one of its id; "" when done, else why not: another process's session of
        that id is live (heard from within `takeover_ms`)."""
        old = self.sessions.get(session.id)
        if old is not None and old.open:
            silent = old.silent_for(self.now.mono)
            if session.incarnation and session.incarnation == old.incarnation:
                # The same process gave up a stream we still hold open (a network cut): its tasks and
                # its lease are the ones the old session knew, so nothing can run twice. Keeping it
                # out until `takeover_ms` would let its lease lapse and kill healthy work (promise 10).
                log.info("executor %s reconnected: its new stream replaces the old one, silent for %.1f s",
                         session.id, silent / 1000)
            elif silent < self.config.takeover_ms:
                return (f"executor {session.id} is connected already (heard from {silent / 1000:.1f} s ago); a "
                        f"second registration under its id is refused. An executor that restarted gets its id "
                        f"back once the old stream closes or has been silent for "
                        f"{self.config.takeover_ms / 1000:.1f} s: retry")
            else:
                log.warning("executor %s: a new registration replaces its session, silent for %.1f s",
                            session.id, silent / 1000)
        if old is not None:
            self._close(old)
        self.sessions[session.id] = session
        return ""

    def _register(self, session: Session, first: executor_pb2.ExecutorMessage, held: set[Key]) -> None:
        reg = first.register
        info = self.view.executor(session.id)
        changed = (
            info is None
            or info.state == J.EXECUTOR_STATE_DOWN
            or info.slots != session.slots
            or dict(info.labels) != session.labels
            or set(info.handlers) != session.handlers
            # Declared down by a proposal still in flight: it applies before this one, so the
            # executor must be recorded up again after it (found by the simulation, seed 33).
            or session.id in self._downing
        )
        if changed:
            cmd = cmds.executor_up(session.id, session.slots, session.labels, session.handlers)
            self._registration_step(session, cmd, "record it")
        if session.draining:
            self._drain(session.id)
        self._send(session, executor_pb2.LeaderMessage(leader_id=self.node_id))
        self._cancel_stale(session, reg.running)
        if reg.unacked:
            self._queue_report(session, executor_pb2.ExecutorMessage(finished=reg.unacked))
        # Fence what it lost before reading its heartbeat: the heartbeat would otherwise see those
        # attempts still current and unreported, and re-send them (an assignment "lost in flight")
        # while their end commits, and then their next attempt would run beside them.
        self._fence_lost(session, held, reg)
        if first.HasField("heartbeat"):
            if Bug.FENCE_AFTER_HEARTBEAT in self.bugs:
                self._on_heartbeat(session, first.heartbeat)
            else:
                session.backlog.insert(0, executor_pb2.ExecutorMessage(heartbeat=first.heartbeat))
        log.info("executor %s registered: %d slots, labels %s", session.id, session.slots, session.labels)
        self._maybe_registered(session)

    def _registration_step(self, session: Session, command: commands_pb2.Command, what: str) -> None:
        """Propose a command the registration waits for; a failure ends the stream."""
        def then(ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
            if not ok:
                if session.open:
                    log.warning("executor %s: could not %s; closing its stream", session.id, what)
                self._close(session)
                return
            session.registering.discard(proposal_id)
            self._maybe_registered(session)

        proposal_id = self._propose(command, then)
        session.registering.add(proposal_id)

    def _maybe_registered(self, session: Session) -> None:
        """Once what the registration proposed applied: take the messages that waited."""
        if session.registering or not session.open:
            return
        backlog, session.backlog = session.backlog, []
        for msg in backlog:
            self._take(session, msg)
        self._kick()

    def _fence_lost(self, session: Session, held: set[Key], reg: executor_pb2.Register) -> None:
        """Attempts we think it holds but it neither runs nor has a result for (it restarted, or an
        assignment was lost in flight) end FENCED and are retried; otherwise they would stay ASSIGNED
        or RUNNING forever while the executor is alive and well."""
        reported = {(r.job_id, r.attempt) for r in reg.running} | {(f.job_id, f.attempt) for f in reg.unacked}
        lost = sorted(held - reported)
        if not lost:
            return
        log.warning("executor %s re-registered without %d of its attempts; retrying them", session.id, len(lost))
        items = [
            cmds.finished_item(job, attempt, J.ATTEMPT_END_FENCED,
                               exit_code=-1, error="the executor re-registered without this attempt")
            for job, attempt in lost
        ]
        self._registration_step(session, cmds.finished(session.id, items), "fence the attempts it lost")

    def message(self, now: Now, executor_id: str, gen: int, msg: executor_pb2.ExecutorMessage) -> str:
        """One message after the registration; returns why the stream must end ("" when it goes on)."""
        self.now = now
        session = self.sessions.get(executor_id)
        if session is None or session.gen != gen or not session.open:
            return ""  # a stream being closed: its last messages no longer count
        self.last_seen[executor_id] = now.mono
        session.last_heard = now.mono
        try:
            check_message(msg)
        except ValidationError as err:
            self.refusals.add(Refusal(Kind.MESSAGE, Reason.INVALID, session.id, str(err)))
            return str(err)
        if session.registering:
            if len(session.backlog) >= self.config.report_backlog:
                log.warning("executor %s: too many messages before its registration applied, closing", session.id)
                self._close(session)
            else:
                session.backlog.append(msg)
            return ""
        self._take(session, msg)
        return ""

    def _take(self, session: Session, msg: executor_pb2.ExecutorMessage) -> None:
        if msg.HasField("heartbeat"):
            self._on_heartbeat(session, msg.heartbeat)
        if msg.started or msg.finished:
            self._queue_report(session, msg)

    def stream_closed(self, executor_id: str, gen: int) -> None:
        session = self.sessions.get(executor_id)
        if session is not None and session.gen == gen:
            session.open = False
            del self.sessions[executor_id]
            log.info("executor %s: stream closed", executor_id)

    def _on_heartbeat(self, session: Session, hb: executor_pb2.Heartbeat) -> None:
        ack = executor_pb2.HeartbeatAck(seq=hb.seq, lease_ms=self.config.lease_ms)
        self._send(session, executor_pb2.LeaderMessage(heartbeat_ack=ack))
        session.lease_granted_at = self.now.mono
        running = {(r.job_id, r.attempt) for r in hb.running}
        if self._timed_out:
            self._confirm_gone(session.id, [(j, h[0]) for j, h in self._timed_out.items()
                                            if h[1] == session.id and (j, h[0]) not in running])
        session.forget_dead(running)
        self._cancel_stale(session, hb.running)
        self._resend_lost_assignments(session, running)
        if hb.draining and not session.draining:
            session.draining = True
            self._drain(session.id)

    def _drain(self, executor_id: str) -> None:
        info = self.view.executor(executor_id)
        if info is not None and info.state != J.EXECUTOR_STATE_DRAINING:
            def then(ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
                if not ok:  # the executor says so again in its next heartbeat or registration
                    log.warning("executor %s: could not record that it drains", executor_id)
            self._propose(cmds.drain(executor_id), then)

    def _cancel_stale(self, session: Session, running: Iterable[Any]) -> None:
        """Kill at once what the executor runs but does not hold now (fencing); what it never held
        is killed too, and counted as refused."""
        current = self._current_on(session.id)
        stale = [ref for ref in running if (ref.job_id, ref.attempt) not in current]
        if stale:
            for ref in stale:
                self._judge(session, Kind.RUNNING, ref.job_id, ref.attempt)
            log.info("executor %s: cancelling %d stale attempts", session.id, len(stale))
            self._cancel(session, stale)

    def _resend_lost_assignments(self, session: Session, running: set[Key]) -> None:
        """An assignment not yet started and missing from the heartbeat a while after it was made
        was lost on the way (a stream cut at the wrong moment): send it again. Executors ignore
        duplicates of what they run or hold."""
        if Bug.RESEND_UNCHECKED in self.bugs:
            self._resend_unchecked(session, running)
            return
        cutoff = self.now.wall - self.config.resend_after_ms
        resend = []
        for ref in self.view.attempts_on(session.id):
            if (ref.job_id, ref.attempt) in running:
                continue
            job = self.view.get_job(ref.job_id)
            if job is None or job.state != J.JOB_STATE_ASSIGNED or job.attempts[-1].assigned_ms > cutoff:
                continue
            resend.append(executor_pb2.Assignment(job_id=job.id, attempt=ref.attempt, spec=job.spec))
        if resend:
            log.info("executor %s: re-sending %d assignments it does not report", session.id, len(resend))
            self._send(session, executor_pb2.LeaderMessage(assign=resend))

    def _resend_unchecked(self, session: Session, running: set[Key]) -> None:
        """Bug.RESEND_UNCHECKED: re-send what this leader pushed to the executor and the heartbeat
        does not list, without asking the state machine whether the attempt is still current."""
        cutoff = self.now.wall - self.config.resend_after_ms
        resend = []
        for (job_id, attempt), sent in self._pushed.get(session.id, {}).items():
            job = self.view.get_job(job_id)
            if (job_id, attempt) in running or sent > cutoff or job is None:
                continue
            resend.append(executor_pb2.Assignment(job_id=job_id, attempt=attempt, spec=job.spec))
        if resend:
            self._send(session, executor_pb2.LeaderMessage(assign=resend))

    # --- applied changes ---------------------------------------------------------------------------

    def job_changed(self, job: jobs_pb2.Job) -> None:
        """Called inside apply: only notes what to do (the next ready carries it)."""
        if job.state == J.JOB_STATE_QUEUED:
            self._kick()
        elif job.state in TERMINAL:
            self._kick()
            if job.schedule_id:  # overlap policies look at the schedule's last job
                self.kick_schedules()
            last = job.attempts[-1] if job.attempts else None
            if last is not None and last.end == J.ATTEMPT_END_CANCELLED and last.executor:
                session = self.sessions.get(last.executor)
                if session is not None:
                    self._cancel(session, [J.AttemptRef(job_id=job.id, attempt=last.number)])

    # --- the clock ---------------------------------------------------------------------------------

    def tick(self, now: Now) -> None:
        """Time passed: dispatch, detect failures and timeouts, fire schedules, as due."""
        self.now = now
        if not self.leading or not self.caught_up:
            return
        self._dispatch()
        if now.mono - self._last_watch >= self.config.watchdog_ms and not self._watch_in_flight:
            self._last_watch = now.mono
            self._expire_attempts()
            self._detect_dead_executors()
            self._contain()
        self._maybe_fire_schedules()

    # --- views -------------------------------------------------------------------------------------

    def executor_view(self, now: Now) -> list[jobs_pb2.ExecutorInfo]:
        out = []
        for info in self.view.executors():
            view = jobs_pb2.ExecutorInfo()
            view.CopyFrom(info)
            session = self.sessions.get(info.id)
            seen = self.last_seen.get(info.id)
            silent = session is None or seen is None or now.mono - seen > 2000
            if info.state == J.EXECUTOR_STATE_CONNECTED and silent:
                view.state = J.EXECUTOR_STATE_DISCONNECTED
            if seen is not None:
                view.last_seen_ms = now.wall - (now.mono - seen)
            if session is not None and session.lease_granted_at is not None:
                view.lease_remaining_ms = max(0, session.lease_granted_at + self.config.lease_ms - now.mono)
            view.running.extend(self.view.attempts_on(info.id))
            view.free_slots = max(0, info.slots - self.view.slots_in_use(info.id))
            out.append(view)
        return out



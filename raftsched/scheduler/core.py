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
Reports are screened before anything is proposed (`screening`): only attempts the executor holds,
or held and lost, reach the log. Nothing is judged before `caught_up` (this leader applied what
was committed before its term).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from raftsched.scheduler.bugs import NO_BUGS, Bug, Bugs
from raftsched.scheduler.firing import plan_commands
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
from raftsched.scheduler.session import Key, Session
from raftsched.scheduler.view import Now, StateView
from raftsched.state import commands as cmds
from raftsched.state.lifecycle import ERROR_MAX_CHARS
from raftsched.state.validate import ValidationError
from raftsched.v1 import commands_pb2, executor_pb2, jobs_pb2

log = logging.getLogger("raftsched.scheduler")
J = jobs_pb2
TERMINAL = frozenset({J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED, J.JOB_STATE_SKIPPED})

Outcome = Callable[[bool, commands_pb2.ApplyResult | None], None]


@dataclass(frozen=True, slots=True)
class CoreConfig:
    lease_ms: int = 3000
    kill_grace_ms: int = 1000
    executor_timeout_ms: int = 5000
    resend_after_ms: int = 2000  # an unstarted assignment missing from heartbeats this long was lost
    queued_per_round: int = 2048  # queued jobs one dispatch round looks at, at most
    rounds_in_flight: int = 4  # assignment batches being replicated at once
    reports_in_flight: int = 8  # report batches of one executor being replicated at once
    report_backlog: int = 4096  # report messages of one executor waiting, before its stream closes
    watchdog_ms: int = 100  # between failure-detector and attempt-timeout rounds
    schedule_sleep_ms: int = 1000  # schedules are planned again at least this often
    schedule_retry_ms: int = 200  # after a schedule proposal failed

    def __post_init__(self) -> None:
        for name in ("rounds_in_flight", "reports_in_flight", "watchdog_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CoreConfig.{name} must be positive, got {getattr(self, name)}")

    @property
    def takeover_ms(self) -> int:
        return self.lease_ms + self.kill_grace_ms


@dataclass(frozen=True, slots=True)
class Proposal:
    id: int
    command: commands_pb2.Command


@dataclass(slots=True)
class Ready:
    """What the world must do: propose `proposals` in order, send `sends` ((executor, stream gen,
    message)), close `closes` ((executor, gen)), and tick again soon when `kick`."""

    proposals: list[Proposal] = field(default_factory=list)
    sends: list[tuple[str, int, executor_pb2.LeaderMessage]] = field(default_factory=list)
    closes: list[tuple[str, int]] = field(default_factory=list)
    kick: bool = False

    def __bool__(self) -> bool:
        return bool(self.proposals or self.sends or self.closes or self.kick)


class SchedulerCore:
    def __init__(self, node_id: str, config: CoreConfig, view: StateView, *, refusals: Refusals,
                 bugs: Bugs = NO_BUGS) -> None:
        self.node_id = node_id
        self.config = config
        self.view = view
        self.refusals = refusals  # what executors sent that was refused, for the node's life
        self.bugs = bugs
        self.sessions: dict[str, Session] = {}
        self.last_seen: dict[str, int] = {}  # executor -> monotonic ms of its last message
        self.elected_at = 0
        self.leading = False
        self.caught_up = False  # this leader applied what was committed before its term
        self.now = Now(0, 0)  # of the last event
        self._ready = Ready()
        self._next_id = 0
        self._gens = 0
        self._waiting: dict[int, Outcome] = {}  # proposal id -> what to do with its outcome
        # Jobs in an assignment batch in the log but not applied yet: job -> (executor, slots).
        self._assigning: dict[str, tuple[str, int]] = {}
        self._rounds = 0  # assignment batches in flight
        self._watch_in_flight = 0  # failure-detector and timeout proposals in flight
        self._last_watch = 0
        self._schedules_in_flight = 0
        self._schedule_wake: int | None = 0  # wall ms to plan again (None: only when kicked)
        self._schedules_kicked = True
        self._last_plan = 0
        self._downing: set[str] = set()  # executors whose executor_down is in flight
        # Timed-out attempts whose process may still run: job -> (attempt, executor, mono ms until
        # which its next attempt waits). See `_held_back`.
        self._timed_out: dict[str, tuple[int, str, int]] = {}
        self.elected_wall = 0
        self._pushed: dict[str, dict[Key, int]] = {}  # only for Bug.RESEND_UNCHECKED

    # --- the ready ---------------------------------------------------------------------------------

    def take_ready(self) -> Ready:
        rd, self._ready = self._ready, Ready()
        return rd

    def proposal_done(self, proposal_id: int, ok: bool, result: commands_pb2.ApplyResult | None = None) -> None:
        """The outcome of a proposal: applied (`ok`, with its result), or lost/refused."""
        then = self._waiting.pop(proposal_id, None)
        if then is not None:
            then(ok, result)

    def _propose(self, command: commands_pb2.Command, then: Outcome | None = None) -> int:
        self._next_id += 1
        self._ready.proposals.append(Proposal(self._next_id, command))
        self._waiting[self._next_id] = then or _ignore
        return self._next_id

    def _send(self, session: Session, msg: executor_pb2.LeaderMessage) -> None:
        if session.open:
            self._ready.sends.append((session.id, session.gen, msg))

    def _close(self, session: Session) -> None:
        if session.open:
            session.open = False
            self._ready.closes.append((session.id, session.gen))

    def _kick(self) -> None:
        self._ready.kick = True

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
        """Make `session` the one of its id; "" when done, else why not: another session of that id
        is live (heard from within `takeover_ms`)."""
        old = self.sessions.get(session.id)
        if old is not None and old.open:
            silent = old.silent_for(self.now.mono)
            if silent < self.config.takeover_ms:
                return (f"executor {session.id} is connected already (heard from {silent / 1000:.1f} s ago); a "
                        f"second registration under its id is refused. An executor that restarted gets its id "
                        f"back once the old stream closes or has been silent for "
                        f"{self.config.takeover_ms / 1000:.1f} s: retry")
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

    def _cancel(self, session: Session, refs: list[Any]) -> None:
        """Tell the executor to kill `refs`; their slots stay busy until they are gone."""
        if not refs:
            return
        slots = self._slots_of(refs)
        for ref in refs:
            session.dying[(ref.job_id, ref.attempt)] = slots.get(ref.job_id, 1)
        out = [J.AttemptRef(job_id=ref.job_id, attempt=ref.attempt) for ref in refs]
        self._send(session, executor_pb2.LeaderMessage(cancel=out))

    def _current_on(self, executor_id: str) -> set[Key]:
        """The attempts `executor_id` holds now (current, given to it), as (job, attempt)."""
        return {(r.job_id, r.attempt) for r in self.view.attempts_on(executor_id)}

    def _judge(self, session: Session, kind: Kind, job_id: str, attempt: int) -> Holding:
        """Whether the executor holds an attempt it reports on; refusals are counted here."""
        job = self.view.get_job(job_id)
        held = holding(job, attempt, session.id)
        if held is Holding.NEVER:
            reason = Reason.UNKNOWN_JOB if job is None else Reason.NOT_HELD
            self.refusals.add(Refusal(kind, reason, session.id, describe(job_id, attempt, job)))
        return held

    def _slots_of(self, refs: Iterable[Any]) -> dict[str, int]:
        """job id -> its slots, for anything with a job_id (attempt refs, results)."""
        jobs = (self.view.get_job(r.job_id) for r in refs)
        return {job.id: job.spec.slots or 1 for job in jobs if job is not None}

    def _is_current(self, job_id: str, attempt: int, executor_id: str) -> bool:
        job = self.view.get_job(job_id)
        if job is None or job.state in TERMINAL or not job.attempts:
            return False
        last = job.attempts[-1]
        return last.number == attempt and last.executor == executor_id and last.end == J.ATTEMPT_END_UNSPECIFIED

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

    # --- reports -----------------------------------------------------------------------------------

    def _queue_report(self, session: Session, msg: executor_pb2.ExecutorMessage) -> None:
        if self._timed_out and msg.finished:
            self._confirm_gone(session.id, [(f.job_id, f.attempt) for f in msg.finished])
        if len(session.reports) >= self.config.report_backlog:
            log.warning("executor %s: too many unreported results, closing its stream", session.id)
            self._close(session)
            return
        session.reports.append(msg)
        self._pump_reports(session)

    def _pump_reports(self, session: Session) -> None:
        """Replicate started/finished reports in batches, up to `reports_in_flight` at once. Each
        batch is appended to the log at once, in arrival order (so an attempt's start always
        precedes its end in the log); its results are acknowledged once they applied."""
        while session.open and session.reports and session.reports_in_flight < self.config.reports_in_flight:
            batch, session.reports = session.reports, []
            started, finished = self._screen_reports(
                session, [ref for m in batch for ref in m.started], [item for m in batch for item in m.finished])
            if started or finished:
                self._propose_report(session, started, finished)

    def _propose_report(self, session: Session, started: list[Any], finished: list[Any]) -> None:
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
            # The executor has freed these slots already: dispatch may refill them while the
            # results commit.
            slots = self._slots_of(finished)
            session.finishing.update({(f.job_id, f.attempt): slots.get(f.job_id, 1) for f in finished})
            self._kick()
        session.reports_in_flight += 1
        pending = {"left": len(commands), "ok": True}

        def then(ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
            pending["left"] -= 1
            pending["ok"] = pending["ok"] and ok
            if pending["left"]:
                return
            self._report_done(session, finished, bool(pending["ok"]))

        for command in commands:
            self._propose(command, then)
        if finished and Bug.ACK_BEFORE_COMMIT in self.bugs:
            self._send(session, executor_pb2.LeaderMessage(
                acked=[J.AttemptRef(job_id=f.job_id, attempt=f.attempt) for f in finished]))

    def _report_done(self, session: Session, finished: list[Any], ok: bool) -> None:
        session.reports_in_flight -= 1
        for f in finished:
            session.finishing.pop((f.job_id, f.attempt), None)
        if not ok:  # a lost proposal: the executor re-reports after reconnecting
            if session.open:
                log.warning("executor %s: could not record results; closing its stream", session.id)
            self._close(session)
            return
        if finished:
            acked = [J.AttemptRef(job_id=f.job_id, attempt=f.attempt) for f in finished]
            self._send(session, executor_pb2.LeaderMessage(acked=acked))
            self._kick()
        self._pump_reports(session)

    def _screen_reports(self, session: Session, started: list[Any], finished: list[Any],
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
                cancel.append(J.AttemptRef(job_id=ref.job_id, attempt=ref.attempt))
        keep_finished, forget = [], []
        for item in finished:
            if not result_end_ok(item):
                detail = f"{item.job_id[:100]}/{item.attempt}: end {item.end} is not a result"
                self.refusals.add(Refusal(Kind.FINISHED, Reason.BAD_END, session.id, detail))
                forget.append(J.AttemptRef(job_id=item.job_id, attempt=item.attempt))
            elif ((item.job_id, item.attempt) in current
                  or self._judge(session, Kind.FINISHED, item.job_id, item.attempt) is not Holding.NEVER):
                keep_finished.append(item)
            else:
                forget.append(J.AttemptRef(job_id=item.job_id, attempt=item.attempt))
        self._cancel(session, cancel)
        if forget:
            self._send(session, executor_pb2.LeaderMessage(acked=forget))
        return keep_started, keep_finished

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

    def kick_schedules(self) -> None:
        self._schedules_kicked = True
        self._kick()

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
        self._maybe_fire_schedules()

    # --- dispatching -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Match queued jobs to free slots and append the batch to the log. Rounds are pipelined:
        up to `rounds_in_flight` batches replicate at once."""
        if self._rounds >= self.config.rounds_in_flight:
            return
        sessions = [s for s in self.sessions.values() if s.can_take_work() and self._accepting(s.id)]
        if not sessions:
            return
        assigning: dict[str, int] = {}
        for executor_id, slots in self._assigning.values():
            assigning[executor_id] = assigning.get(executor_id, 0) + slots
        free = {s.id: s.slots - self.view.slots_in_use(s.id) - s.dying_slots() + self._finishing_slots(s)
                - assigning.get(s.id, 0) for s in sessions}
        if max(free.values()) <= 0:
            return
        queued = (job for job in self.view.iter_queued(self.now.wall)
                  if job.id not in self._assigning and not self._held_back(job))
        matched = self._match(queued, sessions, free)
        if not matched:
            return
        items = [(job_id, attempt, executor_id) for job_id, attempt, executor_id, _ in matched]
        for job_id, _, executor_id, slots in matched:
            self._assigning[job_id] = (executor_id, slots)
        self._rounds += 1

        def then(ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
            self._rounds -= 1
            for job_id, _, _ in items:
                self._assigning.pop(job_id, None)
            if ok:
                self._push_assignments(items)
                self._kick()  # more may be waiting
            # Refused or lost: the next regular tick tries again (never at once: a proposal refused
            # before it was appended, during a leadership transfer, would be refused in a loop).

        self._propose(cmds.assign(items), then)

    def _held_back(self, job: jobs_pb2.Job) -> bool:
        """Promise 9 after a timeout: the timed-out process is told to die, but an executor that is
        cut off or dead does not hear it, and one that hears it takes up to the kill grace. The
        next attempt waits until that executor confirms the process gone (a heartbeat without it,
        or its result), or until its lease and kill grace are over. A timeout proposed before
        this leader was elected is judged by its stamped time. (Found by the simulation, seed 133.)"""
        held = self._timed_out.get(job.id)
        if held is not None:
            if self.now.mono < held[2]:
                return True
            del self._timed_out[job.id]
            return False
        last = job.attempts[-1] if job.attempts else None
        return (last is not None and last.end == J.ATTEMPT_END_TIMED_OUT and last.finished_ms < self.elected_wall
                and self.now.wall - last.finished_ms < self.config.takeover_ms)

    def _confirm_gone(self, executor_id: str, gone: Iterable[Key]) -> None:
        """The executor says these attempts no longer run: their jobs need not wait."""
        for job_id, attempt in gone:
            held = self._timed_out.get(job_id)
            if held is not None and held[0] == attempt and held[1] == executor_id:
                del self._timed_out[job_id]
                self._kick()

    def _finishing_slots(self, session: Session) -> int:
        """Slots of attempts the executor reported ended whose results have not applied yet."""
        return sum(n for (job_id, attempt), n in session.finishing.items()
                   if self._is_current(job_id, attempt, session.id))

    def _accepting(self, executor_id: str) -> bool:
        info = self.view.executor(executor_id)
        return info is not None and info.state == J.EXECUTOR_STATE_CONNECTED

    def _match(self, jobs: Iterable[jobs_pb2.Job], sessions: list[Session], free: dict[str, int],
               ) -> list[tuple[str, int, str, int]]:
        """(job, attempt, executor, slots) for the jobs that fit, taken in the order given
        (priority, then submit order); each on the freest executor that accepts it. Stops once no
        slot is free or `queued_per_round` jobs were looked at. Reads the jobs only."""
        items = []
        for looked, job in enumerate(jobs):
            if looked >= self.config.queued_per_round or max(free.values()) <= 0:
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
            job = self.view.get_job(job_id)
            assert job is not None
            by_executor.setdefault(executor_id, []).append(
                executor_pb2.Assignment(job_id=job_id, attempt=attempt, spec=job.spec))
            if Bug.RESEND_UNCHECKED in self.bugs:
                self._pushed.setdefault(executor_id, {})[(job_id, attempt)] = self.now.wall
        for executor_id, assignments in by_executor.items():
            session = self.sessions.get(executor_id)
            if session is not None:
                self._send(session, executor_pb2.LeaderMessage(assign=assignments))

    # --- failure detection and timeouts ------------------------------------------------------------

    def _watched(self, ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
        self._watch_in_flight -= 1
        if not ok:
            log.info("watchdog proposal lost; the next round decides again")

    def _down_done(self, executor_id: str) -> Outcome:
        def then(ok: bool, result: commands_pb2.ApplyResult | None) -> None:
            self._downing.discard(executor_id)
            self._watched(ok, result)
        return then

    def _expire_attempts(self) -> None:
        refs = self.view.timed_out(self.now.wall)
        if not refs:
            return
        until = self.now.mono + self.config.takeover_ms
        for ref in refs:
            job = self.view.get_job(ref.job_id)
            executor = job.attempts[-1].executor if job and job.attempts else ""
            self._timed_out[ref.job_id] = (ref.attempt, executor, until)
            session = self.sessions.get(executor)
            if session is not None:
                self._cancel(session, [ref])
        self._watch_in_flight += 1
        self._propose(cmds.timed_out([(r.job_id, r.attempt) for r in refs]), self._watched)

    def _detect_dead_executors(self) -> None:
        now = self.now.mono
        timeout = self.config.executor_timeout_ms
        if Bug.DOWN_BEFORE_TIMEOUT in self.bugs:
            timeout = self.config.lease_ms
        elif now - self.elected_at < timeout:
            return  # a new leader first gives every executor time to reconnect
        for info in self.view.executors():
            if info.state == J.EXECUTOR_STATE_DOWN:
                continue
            silent = now - self.last_seen.get(info.id, self.elected_at)
            if silent > timeout:
                log.warning("executor %s: silent for %.1f s, declaring it down", info.id, silent / 1000)
                session = self.sessions.get(info.id)
                if session is not None:
                    self._close(session)
                self._watch_in_flight += 1
                self._downing.add(info.id)
                self._propose(cmds.executor_down(info.id, f"no heartbeat for {silent / 1000:.1f} s"),
                              self._down_done(info.id))

    # --- schedules ---------------------------------------------------------------------------------

    def _maybe_fire_schedules(self) -> None:
        """Decide every due time of every schedule, oldest first, from the committed watermarks;
        once those proposals are done, plan again (when kicked, due, or a while passed)."""
        if self._schedules_in_flight:
            return
        now = self.now
        due = self._schedule_wake is not None and now.wall >= self._schedule_wake
        if not (self._schedules_kicked or due or now.mono - self._last_plan >= self.config.schedule_sleep_ms):
            return
        self._schedules_kicked = False
        self._last_plan = now.mono
        wake: int | None = None
        for schedule in self.view.schedules():
            commands, next_due = plan_commands(
                schedule, now.wall, ignore_window=Bug.CATCHUP_IGNORES_WINDOW in self.bugs,
                manual=Bug.FIRE_WITHOUT_DEDUP in self.bugs)
            for cmd in commands:
                self._schedules_in_flight += 1
                self._propose(cmd, self._fired(schedule.id, cmd))
            if next_due is not None:
                wake = next_due if wake is None else min(wake, next_due)
        self._schedule_wake = wake

    def _fired(self, name: str, cmd: commands_pb2.Command) -> Outcome:
        def then(ok: bool, result: commands_pb2.ApplyResult | None) -> None:
            self._schedules_in_flight -= 1
            if not ok:  # a lost proposal or leadership: plan again from the state
                self._schedule_wake = self.now.wall + self.config.schedule_retry_ms
                return
            if cmd.HasField("skip_fires"):
                first = cmd.skip_fires.fires[0]
                log.info("schedule %s: recorded %d skipped time(s) from %d (%s)",
                         name, len(cmd.skip_fires.fires), first.scheduled_time, first.reason)
            elif result is not None and result.job.id:
                t = cmd.fire_schedule.scheduled_time
                log.info("schedule %s: fired %d as job %s, %d ms after its time", name, t, result.job.id,
                         result.job.submitted_ms - t)
            elif result is not None and result.error:
                log.info("schedule %s: firing refused: %s", name, result.error)
        return then

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


def _ignore(_ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
    pass

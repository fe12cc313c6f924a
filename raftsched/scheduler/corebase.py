"""State and primitives shared by the parts of the scheduling core (`raftsched.scheduler.core`):
the configuration, the ready being built, proposals and their outcomes, sends and closes, and
the read-only helpers every part uses. Pure: no I/O, no clock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from raftsched.jobstates import TERMINAL
from raftsched.scheduler.bugs import NO_BUGS, Bugs
from raftsched.scheduler.screening import (
    Holding,
    Kind,
    Reason,
    Refusal,
    Refusals,
    describe,
    holding,
)
from raftsched.scheduler.session import Key, Session
from raftsched.scheduler.view import Now, StateView
from raftsched.v1 import commands_pb2, executor_pb2, jobs_pb2

log = logging.getLogger("raftsched.scheduler")
J = jobs_pb2

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
    # Containment (promise 14; `raftsched.scheduler.containment`). 0 turns a rule off.
    quarantine_after: int = 5  # failures or timeouts in a row on one executor while another succeeds
    quarantine_ms: int = 60_000  # the first cool-off; each repeat for the same executor doubles it
    quarantine_max_ms: int = 3_600_000  # the longest cool-off
    poison_after: int = 2  # distinct executors lost while running one job before it ends FAILED
    retry_rate: int = 50  # retries dispatched per second, cluster-wide (a token bucket)
    retry_burst: int = 100  # retries dispatched at once after a quiet spell

    def __post_init__(self) -> None:
        for name in ("rounds_in_flight", "reports_in_flight", "watchdog_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CoreConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("quarantine_after", "quarantine_ms", "quarantine_max_ms", "poison_after", "retry_rate",
                     "retry_burst"):
            if getattr(self, name) < 0:
                raise ValueError(f"CoreConfig.{name} must not be negative, got {getattr(self, name)}")

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


class CoreBase:
    def __init__(self, node_id: str, config: CoreConfig, view: StateView, *, refusals: Refusals,
                 bugs: Bugs = NO_BUGS, members_read: Callable[[int], bool] = lambda feature: True) -> None:
        self.node_id = node_id
        self.config = config
        self.view = view
        self.refusals = refusals  # what executors sent that was refused, for the node's life
        self.bugs = bugs
        # Whether every member reads a form of command (a raftsched.features bit); asked each time
        # one would be written (a member may restart on another version at any time).
        self.members_read = members_read
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
        self._placed: dict[str, int] = {}  # executor -> the placement number of its last assignment
        self._placements = 0
        self._containing: set[str] = set()  # executors whose quarantine or release is in flight
        self._retry_tokens = float(config.retry_burst)
        self._tokens_at = 0  # mono ms the bucket was last filled
        self.budget_held: set[str] = set()  # retries the last dispatch round left waiting for a token

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

    # --- shared helpers ----------------------------------------------------------------------------

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

    def _confirm_gone(self, executor_id: str, gone: Iterable[Key]) -> None:
        """The executor says these attempts no longer run: their jobs need not wait."""
        for job_id, attempt in gone:
            held = self._timed_out.get(job_id)
            if held is not None and held[0] == attempt and held[1] == executor_id:
                del self._timed_out[job_id]
                self._kick()


def _ignore(_ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
    pass

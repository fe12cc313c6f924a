"""The scheduler state in memory: jobs, executors, idempotency keys, counters and their indexes.

Every change to a job goes through the few primitives here (`add_job`, `set_state`,
`begin_attempt`, `start_attempt`, `end_attempt`), so the secondary indexes can never drift from
the jobs they index. Each primitive also marks what it touched as dirty; `SchedulerState.apply`
writes exactly the dirty records to RocksDB in one batch. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftsched.state.indexes import SortedKeys
from raftsched.v1 import jobs_pb2, scheduler_pb2

J = jobs_pb2
TERMINAL = frozenset({J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED, J.JOB_STATE_SKIPPED})
DEFAULT_MAX_ATTEMPTS = 3
U64_MAX = 2**64 - 1


def clamp_u64(value: int) -> int:
    """Leader-stamped times plus user-given durations may overflow a uint64 field (which raises)."""
    return max(0, min(value, U64_MAX))


def current_attempt(job: jobs_pb2.Job) -> jobs_pb2.Attempt | None:
    """The attempt still in flight, if any. Invariant: only the last attempt can be unended."""
    if job.attempts and job.attempts[-1].end == J.ATTEMPT_END_UNSPECIFIED:
        return job.attempts[-1]
    return None


def last_attempt_number(job: jobs_pb2.Job) -> int:
    return job.attempts[-1].number if job.attempts else 0


@dataclass
class Counters:
    """Replicated counters, persisted in sm_meta with the changes they count."""

    stale_results_refused: int = 0
    refused_commands: int = 0  # whole commands: malformed, unknown version, unknown target
    refused_items: int = 0  # single items of a batch command (assign, started, timed out)


@dataclass
class Model:
    jobs: dict[str, jobs_pb2.Job] = field(default_factory=dict)
    by_seq: dict[int, jobs_pb2.Job] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)  # Invariant: sorted (ids are never reused)
    by_state: dict[int, SortedKeys] = field(default_factory=dict)  # state -> {(seq,)}
    queue: SortedKeys = field(default_factory=SortedKeys)  # QUEUED jobs as (-priority, seq)
    deadlines: SortedKeys = field(default_factory=SortedKeys)  # (deadline_ms, seq, attempt)
    deadline_of: dict[int, tuple[int, ...]] = field(default_factory=dict)  # seq -> its deadlines key
    on_executor: dict[str, dict[str, int]] = field(default_factory=dict)  # executor -> {job: attempt}
    dependents: dict[str, list[str]] = field(default_factory=dict)
    idem: dict[str, str] = field(default_factory=dict)
    executors: dict[str, jobs_pb2.ExecutorInfo] = field(default_factory=dict)
    schedules: dict[str, scheduler_pb2.Schedule] = field(default_factory=dict)  # by name (= id)
    by_schedule: dict[str, list[int]] = field(default_factory=dict)  # schedule id -> seqs, sorted
    ended_scheduled: list[str] = field(default_factory=list)  # jobs of schedules that just ended
    next_seq: int = 1
    applied_index: int = 0
    counters: Counters = field(default_factory=Counters)
    dirty_jobs: dict[str, None] = field(default_factory=dict)  # an ordered set
    dirty_executors: dict[str, None] = field(default_factory=dict)
    dirty_idem: dict[str, None] = field(default_factory=dict)
    dirty_schedules: dict[str, None] = field(default_factory=dict)  # put or deleted (absent)

    # --- jobs -----------------------------------------------------------------------------------

    def add_job(self, job: jobs_pb2.Job) -> None:
        """Index a job (a new one, or one loaded from RocksDB) under every index it belongs to.

        Idempotency keys are not indexed here: they have their own column family (`put_idem`).
        """
        assert job.id not in self.jobs, f"job {job.id} added twice"
        self.jobs[job.id] = job
        self.by_seq[job.seq] = job
        if self.seqs and job.seq < self.seqs[-1]:
            raise AssertionError("jobs must be added in seq order")
        self.seqs.append(job.seq)
        self._state_index(job.state).add((job.seq,))
        if job.state == J.JOB_STATE_QUEUED:
            self.queue.add(_queue_key(job))
        for dep in job.spec.depends_on:
            self.dependents.setdefault(dep, []).append(job.id)
        if job.schedule_id:
            self.by_schedule.setdefault(job.schedule_id, []).append(job.seq)
        attempt = current_attempt(job)
        if attempt is not None:
            self._track_attempt(job, attempt)

    def set_state(self, job: jobs_pb2.Job, state: int, now: int, reason: str = "") -> None:
        # Invariant (SPEC §6.3): a terminal state is final; handlers check before calling.
        assert job.state not in TERMINAL, f"{job.id} is already terminal"
        if job.state == J.JOB_STATE_QUEUED:
            self.queue.discard(_queue_key(job))
        self._state_index(job.state).discard((job.seq,))
        job.state = state  # type: ignore[assignment]
        job.state_reason = reason
        job.updated_ms = clamp_u64(now)
        self._state_index(state).add((job.seq,))
        if state == J.JOB_STATE_QUEUED:
            self.queue.add(_queue_key(job))
        if state in TERMINAL and job.schedule_id:
            self.ended_scheduled.append(job.id)
        self.touch(job)

    def touch(self, job: jobs_pb2.Job) -> None:
        self.dirty_jobs[job.id] = None

    def count(self, state: int) -> int:
        return len(self.by_state.get(state, ()))

    def _state_index(self, state: int) -> SortedKeys:
        index = self.by_state.get(state)
        if index is None:
            index = self.by_state[state] = SortedKeys()
        return index

    # --- attempts -------------------------------------------------------------------------------

    def begin_attempt(self, job: jobs_pb2.Job, executor: str, now: int) -> jobs_pb2.Attempt:
        assert current_attempt(job) is None, f"{job.id} already has a current attempt"
        attempt = job.attempts.add(number=last_attempt_number(job) + 1, executor=executor)
        attempt.assigned_ms = clamp_u64(now)
        self._track_attempt(job, attempt)
        self.touch(job)
        return attempt

    def start_attempt(self, job: jobs_pb2.Job, attempt: jobs_pb2.Attempt, now: int) -> None:
        self._untrack_attempt(job, attempt)
        attempt.started_ms = clamp_u64(now)
        self._track_attempt(job, attempt)  # the deadline now counts from the start
        self.touch(job)

    def end_attempt(self, job: jobs_pb2.Job, attempt: jobs_pb2.Attempt, end: int, now: int) -> None:
        self._untrack_attempt(job, attempt)
        attempt.end = end  # type: ignore[assignment]
        attempt.finished_ms = clamp_u64(now)
        self.touch(job)

    def _track_attempt(self, job: jobs_pb2.Job, attempt: jobs_pb2.Attempt) -> None:
        self.on_executor.setdefault(attempt.executor, {})[job.id] = attempt.number
        if job.spec.timeout_ms:
            since = attempt.started_ms or attempt.assigned_ms
            key = (since + job.spec.timeout_ms, job.seq, attempt.number)
            self.deadlines.add(key)
            self.deadline_of[job.seq] = key

    def _untrack_attempt(self, job: jobs_pb2.Job, attempt: jobs_pb2.Attempt) -> None:
        running = self.on_executor.get(attempt.executor)
        if running is not None:
            running.pop(job.id, None)
            if not running:
                del self.on_executor[attempt.executor]
        key = self.deadline_of.pop(job.seq, None)
        if key is not None:
            self.deadlines.discard(key)

    def slots_in_use(self, executor: str) -> int:
        return sum(job_slots(self.jobs[job_id]) for job_id in self.on_executor.get(executor, {}))

    # --- executors and keys ---------------------------------------------------------------------

    def put_executor(self, info: jobs_pb2.ExecutorInfo) -> None:
        self.executors[info.id] = info
        self.dirty_executors[info.id] = None

    def put_idem(self, key: str, job_id: str) -> None:
        self.idem[key] = job_id
        self.dirty_idem[key] = None

    def put_schedule(self, schedule: scheduler_pb2.Schedule) -> None:
        self.schedules[schedule.id] = schedule
        self.dirty_schedules[schedule.id] = None

    def delete_schedule(self, name: str) -> None:
        del self.schedules[name]
        self.dirty_schedules[name] = None

    def take_dirty(self) -> tuple[list[str], list[str], list[str]]:
        """The ids changed since the last call, in change order; clears the dirty sets.

        Schedules have their own: `take_dirty_schedules`."""
        out = (list(self.dirty_jobs), list(self.dirty_executors), list(self.dirty_idem))
        self.dirty_jobs.clear()
        self.dirty_executors.clear()
        self.dirty_idem.clear()
        return out

    def take_dirty_schedules(self) -> list[str]:
        out = list(self.dirty_schedules)
        self.dirty_schedules.clear()
        return out


def job_slots(job: jobs_pb2.Job) -> int:
    return job.spec.slots or 1


def _queue_key(job: jobs_pb2.Job) -> tuple[int, int]:
    # Higher priority first, then submit order (SPEC §5).
    return (-job.spec.priority, job.seq)

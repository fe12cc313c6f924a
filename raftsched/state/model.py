"""The scheduler state as apply sees it: RocksDB is the store of record, memory holds the active part.

Promise 12 (SPEC §6): a node's memory is bounded by its active work, not by the history it keeps.
So memory holds only what apply and the leader must decide quickly:

- the jobs with an attempt in flight (ASSIGNED, RUNNING), bounded by executor slots;
- compact indexes of the other live jobs (the queue as one int per QUEUED job, retry backoffs,
  dependants), attempt deadlines, executors, schedules and exact counts by state;
- the jobs read or changed since the last flush, and a small bounded cache of live jobs.

Every other job, finished or waiting, is read from RocksDB when a command needs it (`job()`).
Reads see the changes of the commands applied before them in the same batch: changed jobs stay in
memory until `SchedulerState` flushes them, and idempotency keys have a write overlay.

Every change to a job goes through the primitives here (`add_job`, `set_state`, `begin_attempt`,
`start_attempt`, `end_attempt`, `delete_job`, `touch`), so the indexes can never drift from the
jobs they index. Nothing here writes, reads a clock or randomises.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from raftsched.jobstates import TERMINAL
from raftsched.state import keys
from raftsched.state.indexes import SortedKeys
from raftsched.v1 import admin_pb2, jobs_pb2, notify_pb2, scheduler_pb2

J = jobs_pb2
ACTIVE = frozenset({J.JOB_STATE_ASSIGNED, J.JOB_STATE_RUNNING})  # an attempt is in flight
LIVE = frozenset({J.JOB_STATE_PENDING, J.JOB_STATE_QUEUED, *ACTIVE})
DEFAULT_MAX_ATTEMPTS = 3
U64_MAX = 2**64 - 1
CACHE_JOBS = 4096  # clean live jobs kept after a flush (the dispatcher reads the queue's head often)
_PRIORITY_BIAS = 2**31  # priority is an int32: bias it to make queue keys non-negative


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


def job_slots(job: jobs_pb2.Job) -> int:
    return job.spec.slots or 1


def queue_key(job: jobs_pb2.Job) -> int:
    """Higher priority first, then submit order (SPEC §5), as one int per queued job."""
    return ((_PRIORITY_BIAS - job.spec.priority) << 64) | job.seq


def queue_key_seq(key: int) -> int:
    return key & U64_MAX


class Reader(Protocol):
    """Point reads of the state machine's column families, as of the last flush."""

    def get(self, family: str, key: bytes) -> bytes | None: ...


@dataclass
class Counters:
    """Replicated counters, persisted in sm_meta with the changes they count."""

    stale_results_refused: int = 0
    refused_commands: int = 0  # whole commands: malformed, unknown version, unknown target
    refused_items: int = 0  # single items of a batch command (assign, started, timed out, purge)
    jobs_purged: int = 0
    keys_forgotten: int = 0


@dataclass(frozen=True, slots=True)
class Before:
    """What a changed job looked like at the last flush: which index entries it has on disk."""

    state: int
    updated_ms: int


@dataclass
class Model:
    reader: Reader
    # --- jobs ---
    active: dict[str, jobs_pb2.Job] = field(default_factory=dict)  # Invariant: state in ACTIVE
    touched: dict[str, jobs_pb2.Job] = field(default_factory=dict)  # read or changed since the flush
    cache: OrderedDict[str, jobs_pb2.Job] = field(default_factory=OrderedDict)  # clean, live, bounded
    dirty: dict[str, Before | None] = field(default_factory=dict)  # changed: id -> on disk (None: new)
    # purged since the flush: id -> (job, its entries on disk; None: made in this batch)
    deleted: dict[str, tuple[jobs_pb2.Job, Before | None]] = field(default_factory=dict)
    # --- indexes of live jobs (derived; rebuilt on load) ---
    queue: SortedKeys[int] = field(default_factory=SortedKeys)  # QUEUED jobs as queue_key
    backoff: dict[int, int] = field(default_factory=dict)  # QUEUED seq -> not_before_ms (when > 0)
    deadlines: SortedKeys[tuple[int, ...]] = field(default_factory=SortedKeys)  # (deadline_ms, seq, attempt)
    deadline_of: dict[int, tuple[int, ...]] = field(default_factory=dict)  # seq -> its deadlines key
    on_executor: dict[str, dict[str, int]] = field(default_factory=dict)  # executor -> {job: attempt}
    # job id -> the live jobs that depend on it, in submit order (an ordered set)
    dependents: dict[str, dict[str, None]] = field(default_factory=dict)
    # --- replicated, small ---
    counts: dict[int, int] = field(default_factory=dict)  # jobs by state, exact
    executors: dict[str, jobs_pb2.ExecutorInfo] = field(default_factory=dict)
    schedules: dict[str, scheduler_pb2.Schedule] = field(default_factory=dict)  # by name (= id)
    alarms: dict[tuple[str, str], admin_pb2.Alarm] = field(default_factory=dict)  # (node, alarm) -> it
    sinks: dict[str, notify_pb2.NotifySink] = field(default_factory=dict)  # by name
    # sink -> the event keys in its outbox, oldest first (an ordered set; values are in RocksDB)
    outbox: dict[str, dict[bytes, None]] = field(default_factory=dict)
    event_counts: dict[str, int] = field(default_factory=dict)  # events made, by type
    next_seq: int = 1
    applied_index: int = 0
    entry_index: int = 0  # the entry being applied (event ids derive from it)
    event_n: int = 0  # events made so far by that entry
    counters: Counters = field(default_factory=Counters)
    # --- pending writes besides jobs ---
    idem_put: dict[str, tuple[int, str]] = field(default_factory=dict)  # key -> (time, job id)
    idem_del: dict[str, int] = field(default_factory=dict)  # key -> its time (for the time index)
    dirty_executors: dict[str, None] = field(default_factory=dict)  # an ordered set
    dirty_schedules: dict[str, None] = field(default_factory=dict)  # put or deleted (absent)
    dirty_alarms: dict[tuple[str, str], None] = field(default_factory=dict)  # put or deleted (absent)
    dirty_sinks: dict[str, None] = field(default_factory=dict)  # put or deleted (absent)
    outbox_writes: dict[tuple[str, bytes], bytes | None] = field(default_factory=dict)  # None: delete
    ended_scheduled: list[str] = field(default_factory=list)  # jobs of schedules that just ended
    hash_points: list[int] = field(default_factory=list)  # check ids applied, to hash the state after
    # False while applying an entry whose result nobody reads (SchedulerState.apply's `wanted`)
    results_wanted: bool = True
    # the meta values the last flush wrote (empty when loaded: the first flush writes them all)
    meta_written: dict[bytes, int] = field(default_factory=dict)
    # the executors' handler names, kept while no executor changes (every submit checks against it)
    executor_handlers: frozenset[str] | None = None

    # --- reading jobs ---------------------------------------------------------------------------

    def job(self, job_id: str) -> jobs_pb2.Job | None:
        """The job as of the commands applied so far; kept in `touched` until the next flush, so
        a command may change it and the change is what later reads in the batch see."""
        found = self.active.get(job_id) or self.touched.get(job_id)
        if found is not None:
            return found
        if job_id in self.deleted:
            return None
        found = self.cache.pop(job_id, None) or self._load(job_id)
        if found is not None:
            self.touched[job_id] = found
        return found

    def peek(self, job_id: str) -> jobs_pb2.Job | None:
        """As `job`, for reads outside apply (the caller must not change it): a live job read from
        RocksDB goes into the bounded cache, not into `touched`."""
        found = self.active.get(job_id) or self.touched.get(job_id)
        if found is None and job_id not in self.deleted:
            found = self.cache.get(job_id)
            if found is None:
                found = self._load(job_id)
                if found is not None and found.state in LIVE:
                    self._cache_put(found)
        return found

    def by_seq(self, seq: int) -> jobs_pb2.Job | None:
        return self.peek(f"j{seq}")

    def _load(self, job_id: str) -> jobs_pb2.Job | None:
        seq = keys.seq_of(job_id)
        raw = self.reader.get(keys.JOBS, keys.job_key(seq)) if seq is not None else None
        return J.Job.FromString(raw) if raw is not None else None

    def _cache_put(self, job: jobs_pb2.Job) -> None:
        self.cache[job.id] = job
        self.cache.move_to_end(job.id)
        while len(self.cache) > CACHE_JOBS:
            self.cache.popitem(last=False)

    # --- changing jobs --------------------------------------------------------------------------

    def touch(self, job: jobs_pb2.Job) -> None:
        """Mark a job changed (its record is rewritten at the flush). Call before changing it: the
        first touch since the flush remembers which index entries it has on disk."""
        if job.id not in self.dirty:
            self.dirty[job.id] = Before(job.state, job.updated_ms)

    def add_job(self, job: jobs_pb2.Job) -> None:
        """A new job: count and index it. Idempotency keys are recorded apart (`put_idem`)."""
        # Ids come from next_seq, which only grows: no stored job can have this one, so the check
        # stays in memory (a RocksDB read per submitted job was a fifth of SubmitJobs' apply).
        assert job.seq == self.next_seq - 1 and job.id not in self.touched, f"job {job.id} added twice"
        self.dirty[job.id] = None
        self.counts[job.state] = self.counts.get(job.state, 0) + 1
        self.touched[job.id] = job
        self.index_live(job)

    def index_live(self, job: jobs_pb2.Job) -> None:
        """Put a job under the in-memory indexes of live jobs (a new one, or one loaded at start-up
        in seq order, so that every ordered index is as it was before the restart)."""
        if job.state in ACTIVE:
            self.active[job.id] = job
            self.touched.pop(job.id, None)
        if job.state == J.JOB_STATE_QUEUED:
            self._enqueue(job)
        if job.state in LIVE:
            for dep in job.spec.depends_on:
                self.dependents.setdefault(dep, {})[job.id] = None
        attempt = current_attempt(job)
        if attempt is not None:
            self._track_attempt(job, attempt)

    def set_state(self, job: jobs_pb2.Job, state: int, now: int, reason: str = "") -> None:
        # Invariant (SPEC §6.3): a terminal state is final; handlers check before calling.
        assert job.state not in TERMINAL, f"{job.id} is already terminal"
        self.touch(job)
        old = job.state
        if old == J.JOB_STATE_QUEUED:
            self.queue.discard(queue_key(job))
            self.backoff.pop(job.seq, None)
        self.counts[old] -= 1
        job.state = state  # type: ignore[assignment]
        job.state_reason = reason
        job.updated_ms = clamp_u64(now)
        self.counts[state] = self.counts.get(state, 0) + 1
        if state == J.JOB_STATE_QUEUED:
            self._enqueue(job)
        if state in ACTIVE:
            self.active[job.id] = job
            self.touched.pop(job.id, None)
        elif old in ACTIVE:
            del self.active[job.id]
            self.touched[job.id] = job
        if state in TERMINAL:
            self._release_dependencies(job)
            if job.schedule_id:
                self.ended_scheduled.append(job.id)

    def _enqueue(self, job: jobs_pb2.Job) -> None:
        self.queue.add(queue_key(job))
        if job.not_before_ms:
            self.backoff[job.seq] = job.not_before_ms

    def _release_dependencies(self, job: jobs_pb2.Job) -> None:
        """A job that ended no longer holds its dependencies (see `is_held`)."""
        for dep in job.spec.depends_on:
            waiting = self.dependents.get(dep)
            if waiting is not None:
                waiting.pop(job.id, None)
                if not waiting:
                    del self.dependents[dep]

    def is_held(self, job_id: str) -> bool:
        """A live job depends on it: it must be kept (retention waits until its dependants end)."""
        return bool(self.dependents.get(job_id))

    def delete_job(self, job: jobs_pb2.Job) -> None:
        """Forget a finished job nothing live depends on, with its idempotency key."""
        assert job.state in TERMINAL and not self.is_held(job.id), f"{job.id} cannot be deleted"
        self.counts[job.state] -= 1
        self.touched.pop(job.id, None)
        self.cache.pop(job.id, None)
        # What is on disk to delete: as it was at the last flush (it may have ended since).
        on_disk = self.dirty.pop(job.id) if job.id in self.dirty else Before(job.state, job.updated_ms)
        self.deleted[job.id] = (job, on_disk)
        key = job.spec.idempotency_key
        if key and self.idem_lookup(key) == job.id:
            self.forget_key(key)

    def count(self, state: int) -> int:
        return self.counts.get(state, 0)

    # --- attempts -------------------------------------------------------------------------------

    def begin_attempt(self, job: jobs_pb2.Job, executor: str, now: int) -> jobs_pb2.Attempt:
        assert current_attempt(job) is None, f"{job.id} already has a current attempt"
        self.touch(job)
        attempt = job.attempts.add(number=last_attempt_number(job) + 1, executor=executor)
        attempt.assigned_ms = clamp_u64(now)
        self._track_attempt(job, attempt)
        return attempt

    def start_attempt(self, job: jobs_pb2.Job, attempt: jobs_pb2.Attempt, now: int) -> None:
        self.touch(job)
        self._untrack_attempt(job, attempt)
        attempt.started_ms = clamp_u64(now)
        self._track_attempt(job, attempt)  # the deadline now counts from the start

    def end_attempt(self, job: jobs_pb2.Job, attempt: jobs_pb2.Attempt, end: int, now: int) -> None:
        self.touch(job)
        self._untrack_attempt(job, attempt)
        attempt.end = end  # type: ignore[assignment]
        attempt.finished_ms = clamp_u64(now)

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
        return sum(job_slots(self.active[job_id]) for job_id in self.on_executor.get(executor, {}))

    def queued(self) -> Iterator[tuple[int, int]]:
        """(seq, not_before_ms) of the QUEUED jobs, higher priority first, then submit order."""
        for qkey in self.queue:
            seq = queue_key_seq(qkey)
            yield seq, self.backoff.get(seq, 0)

    # --- idempotency keys -----------------------------------------------------------------------

    def idem_lookup(self, key: str) -> str | None:
        """The job id a key names, or None (never set, forgotten)."""
        pending = self.idem_put.get(key)
        if pending is not None:
            return pending[1]
        if key in self.idem_del:
            return None
        raw = self.reader.get(keys.IDEM, key.encode())
        return keys.idem_value_parts(raw)[1] if raw is not None else None

    def put_idem(self, key: str, job_id: str, time_ms: int) -> None:
        self.idem_put[key] = (time_ms, job_id)

    def forget_key(self, key: str) -> bool:
        """Forget a key (its window ended or its job went); False when it was not known."""
        if self.idem_put.pop(key, None) is None:  # else made in this batch: nothing on disk yet
            if key in self.idem_del:
                return False
            raw = self.reader.get(keys.IDEM, key.encode())
            if raw is None:
                return False
            self.idem_del[key] = keys.idem_value_parts(raw)[0]
        self.counters.keys_forgotten += 1
        return True

    # --- executors and schedules ----------------------------------------------------------------

    def put_executor(self, info: jobs_pb2.ExecutorInfo) -> None:
        self.executors[info.id] = info
        self.dirty_executors[info.id] = None
        self.executor_handlers = None

    def put_schedule(self, schedule: scheduler_pb2.Schedule) -> None:
        self.schedules[schedule.id] = schedule
        self.dirty_schedules[schedule.id] = None

    def delete_schedule(self, name: str) -> None:
        del self.schedules[name]
        self.dirty_schedules[name] = None

    def set_alarm(self, alarm: admin_pb2.Alarm | None, node: str, name: str) -> None:
        """Raise (`alarm`) or clear (None) the alarm `name` on `node`."""
        if alarm is None:
            self.alarms.pop((node, name), None)
        else:
            self.alarms[(node, name)] = alarm
        self.dirty_alarms[(node, name)] = None

    def put_sink(self, sink: notify_pb2.NotifySink) -> None:
        self.sinks[sink.name] = sink
        self.dirty_sinks[sink.name] = None

    def delete_sink(self, name: str) -> None:
        del self.sinks[name]
        self.dirty_sinks[name] = None

    def outbox_put(self, sink: str, key: bytes, raw: bytes) -> None:
        # Invariant: keys are added in log order, so each outbox dict stays oldest first.
        self.outbox.setdefault(sink, {})[key] = None
        self.outbox_writes[(sink, key)] = raw

    def outbox_remove(self, sink: str, key: bytes) -> None:
        self.outbox[sink].pop(key)
        self.outbox_writes[(sink, key)] = None

    def begin_entry(self, index: int) -> None:
        self.entry_index = index
        self.event_n = 0

    # --- after a flush --------------------------------------------------------------------------

    def flushed(self) -> None:
        """The pending changes are on disk: clear them, keep the active jobs, cache a few others."""
        self.dirty.clear()
        self.deleted.clear()
        self.idem_put.clear()
        self.idem_del.clear()
        self.dirty_executors.clear()
        self.dirty_schedules.clear()
        self.dirty_alarms.clear()
        self.dirty_sinks.clear()
        self.outbox_writes.clear()
        for job in self.touched.values():
            if job.state in LIVE:  # finished jobs are rarely read again: RocksDB has them
                self._cache_put(job)
        self.touched.clear()

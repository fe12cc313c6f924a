"""The replicated scheduler state machine (SPEC §5-§7), applied on every node from committed entries.

Memory is the read path, RocksDB the durable copy (write-through): `apply` changes the in-memory
model through `handlers`, then writes every record it touched, plus the new applied index, in ONE
WriteBatch. The batch is not synced: the Raft log is, and replaying it is deterministic, so after
a crash the entries above the durable applied index are simply applied again.

Column families (raw bytes):

    sm_jobs       seq (u64 big-endian)  -> Job
    sm_idem       idempotency key       -> job id
    sm_executors  executor id           -> ExecutorInfo (replicated fields only)
    sm_schedules  schedule name         -> Schedule (next_fire_times is computed on read, never stored)
    sm_meta       b"applied_index", b"next_seq", counters -> u64 big-endian
"""

from __future__ import annotations

import itertools
import logging
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from raftsched.state import snapshot as snap
from raftsched.state.handlers import apply_command, job_copy
from raftsched.state.lifecycle import state_name
from raftsched.state.listing import JobQuery, cut_page, seqs_after
from raftsched.state.model import Model, current_attempt
from raftsched.storage.errors import CorruptionError
from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2

log = logging.getLogger(__name__)
J = jobs_pb2

COLUMN_FAMILIES = ["sm_jobs", "sm_idem", "sm_executors", "sm_schedules", "sm_meta"]
BUILTIN_HANDLERS = frozenset({"noop", "sleep", "echo", "fail"})
META_FORMAT = 1
_U64 = struct.Struct(">Q")

JobListener = Callable[[jobs_pb2.Job], None]


class StateDB(Protocol):
    """What the state machine needs of `raftsched.storage.db.NodeDB`."""

    def cf(self, name: str) -> Any: ...  # a rocksdict view of a column family, raw bytes
    def handle(self, name: str) -> Any: ...  # a ColumnFamily handle for WriteBatch.put
    def batch(self) -> Any: ...
    def write(self, batch: Any, *, sync: bool) -> None: ...


class SchedulerState:
    """Deterministic `apply` of committed commands, read-only queries, snapshot and restore."""

    def __init__(self, db: StateDB) -> None:
        # No handle or view of `db` is kept: rocksdict holds the database open while one lives.
        self._db = db
        self._listeners: list[JobListener] = []
        self._m = self._load()

    @property
    def applied_index(self) -> int:
        return self._m.applied_index

    # --- apply ----------------------------------------------------------------------------------

    def apply(self, entries: Sequence[tuple[int, bytes | None]]) -> list[commands_pb2.ApplyResult | None]:
        """Apply committed entries (index, command bytes or None for a no-op/config entry).

        Entries at or below the applied index were applied before a restart and are skipped with
        a None result. Never raises on any entry's content.
        """
        results: list[commands_pb2.ApplyResult | None] = []
        last = self._m.applied_index
        for index, data in entries:
            if index <= last:
                results.append(None)
                continue
            # Invariant: committed entries are applied in order without gaps (Raft's log matching).
            assert index == last + 1, f"apply gap: entry {index} after applied {last}"
            results.append(None if data is None else apply_command(self._m, data))
            last = index
        if last != self._m.applied_index:
            self._m.applied_index = last
            changed = self._persist()
            self._notify(changed)
        return results

    def _persist(self) -> list[str]:
        """Write every dirty record and the meta in one batch; returns the changed job ids."""
        m = self._m
        jobs, executors, keys = m.take_dirty()
        batch = self._db.batch()
        handle = self._db.handle("sm_jobs")
        for job_id in jobs:
            job = m.jobs[job_id]
            batch.put(_U64.pack(job.seq), job.SerializeToString(deterministic=True), handle)
        handle = self._db.handle("sm_executors")
        for executor_id in executors:
            batch.put(executor_id.encode(), m.executors[executor_id].SerializeToString(deterministic=True), handle)
        handle = self._db.handle("sm_idem")
        for key in keys:
            batch.put(key.encode(), m.idem[key].encode(), handle)
        handle = self._db.handle("sm_schedules")
        for name in m.take_dirty_schedules():
            schedule = m.schedules.get(name)
            if schedule is None:
                batch.delete(name.encode(), handle)
            else:
                batch.put(name.encode(), schedule.SerializeToString(deterministic=True), handle)
        handle = self._db.handle("sm_meta")
        for meta_key, value in _meta(m).items():
            batch.put(meta_key, _U64.pack(value), handle)
        self._db.write(batch, sync=False)
        return jobs

    # --- listeners ------------------------------------------------------------------------------

    def add_listener(self, callback: JobListener) -> None:
        """Call `callback` after each apply with every job that changed (a copy it may keep)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: JobListener) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self, changed: list[str]) -> None:
        if not self._listeners:
            return
        for job_id in changed:
            job = job_copy(self._m.jobs[job_id])
            for listener in list(self._listeners):
                try:
                    listener(job)
                except Exception:
                    # The one broad except: a watcher's bug must not break apply on this node.
                    log.exception("job listener %r failed on %s", listener, job_id)

    # --- loading, snapshot, restore -------------------------------------------------------------

    def _load(self) -> Model:
        m = Model()
        for _key, value in self._db.cf("sm_jobs").items():
            m.add_job(J.Job.FromString(value))
        for key, value in self._db.cf("sm_executors").items():
            m.executors[key.decode()] = J.ExecutorInfo.FromString(value)
        for key, value in self._db.cf("sm_idem").items():
            m.idem[key.decode()] = value.decode()
        for key, value in self._db.cf("sm_schedules").items():
            m.schedules[key.decode()] = scheduler_pb2.Schedule.FromString(value)
        meta = {key: _U64.unpack(value)[0] for key, value in self._db.cf("sm_meta").items()}
        if meta.get(b"format", META_FORMAT) != META_FORMAT:
            raise CorruptionError(f"sm_meta: state format {meta[b'format']} is unknown")
        m.applied_index = meta.get(b"applied_index", 0)
        m.next_seq = meta.get(b"next_seq", 1)
        m.counters.stale_results_refused = meta.get(b"stale_results_refused", 0)
        m.counters.refused_commands = meta.get(b"refused_commands", 0)
        m.counters.refused_items = meta.get(b"refused_items", 0)
        return m

    def snapshot(self) -> bytes:
        """Every sm_* record in key order: equal states give equal bytes."""
        records = (
            (name, bytes(key), bytes(value))
            for name in COLUMN_FAMILIES
            for key, value in self._db.cf(name).items()
        )
        return snap.encode(COLUMN_FAMILIES, records)

    def restore(self, data: bytes) -> None:
        """Replace all state with the snapshot's (checked first: a bad one changes nothing)."""
        records = snap.decode(data, COLUMN_FAMILIES)
        batch = self._db.batch()
        for name in COLUMN_FAMILIES:
            handle = self._db.handle(name)
            for key, _value in self._db.cf(name).items():
                batch.delete(key, handle)
        for name, key, value in records:
            batch.put(key, value, self._db.handle(name))
        # Synced: the log below the snapshot is discarded once it is installed.
        self._db.write(batch, sync=True)
        self._m = self._load()

    # --- queries (read-only; every message returned is a copy) ----------------------------------

    def get_job(self, job_id: str) -> jobs_pb2.Job | None:
        job = self._m.jobs.get(job_id)
        return job_copy(job) if job is not None else None

    def job_by_key(self, key: str) -> jobs_pb2.Job | None:
        job_id = self._m.idem.get(key)
        return self.get_job(job_id) if job_id is not None else None

    def list_jobs(self, query: JobQuery) -> tuple[list[jobs_pb2.Job], str]:
        """One page of a walk (see `raftsched.state.listing`); the token is the last seq looked at."""
        walk = ((seq, self._m.by_seq.get(seq)) for seq in seqs_after(self._index_seqs(query), query))
        page, token = cut_page(query, walk)
        return [job_copy(job) for job in page], token

    def _index_seqs(self, query: JobQuery) -> Iterator[int]:
        if query.schedule:  # usually far fewer than the jobs in one state; the walk filters the state
            seqs: Sequence[int] = self._m.by_schedule.get(query.schedule, [])
        elif query.state:
            index = self._m.by_state.get(query.state)
            seqs = [key[0] for key in index] if index is not None else []
        else:
            seqs = self._m.seqs
        return reversed(seqs) if query.newest_first else iter(seqs)

    def executors(self) -> list[jobs_pb2.ExecutorInfo]:
        return [self._executor_view(info) for _, info in sorted(self._m.executors.items())]

    def executor(self, executor_id: str) -> jobs_pb2.ExecutorInfo | None:
        info = self._m.executors.get(executor_id)
        return self._executor_view(info) if info is not None else None

    def _executor_view(self, info: jobs_pb2.ExecutorInfo) -> jobs_pb2.ExecutorInfo:
        """Replicated fields only; the leader adds running/free_slots (attempts_on, slots_in_use)
        and its local view (last_seen_ms, lease_remaining_ms, DISCONNECTED)."""
        out = J.ExecutorInfo()
        out.CopyFrom(info)
        return out

    def queued(self, now_ms: int, limit: int) -> list[jobs_pb2.Job]:
        """QUEUED jobs whose backoff has passed: higher priority first, then submit order.

        Jobs still in backoff are stepped over; there are few of them next to the ready ones.
        """
        return [job_copy(job) for job in itertools.islice(self.iter_queued(now_ms), limit)]

    def iter_queued(self, now_ms: int) -> Iterator[jobs_pb2.Job]:
        """As `queued`, lazily and without copies, for the dispatcher: read the jobs only, and
        finish with the iterator before anything else can apply."""
        for _neg_priority, seq in self._m.queue:
            job = self._m.by_seq[seq]
            if job.not_before_ms <= now_ms:
                yield job

    def attempts_on(self, executor_id: str) -> list[jobs_pb2.AttemptRef]:
        running = self._m.on_executor.get(executor_id, {})
        refs = [J.AttemptRef(job_id=job_id, attempt=n) for job_id, n in running.items()]
        return sorted(refs, key=lambda ref: self._m.jobs[ref.job_id].seq)

    def timed_out(self, now_ms: int) -> list[jobs_pb2.AttemptRef]:
        """Current attempts past their deadline (started_ms, else assigned_ms, + timeout_ms)."""
        out: list[jobs_pb2.AttemptRef] = []
        for deadline, seq, attempt in self._m.deadlines:
            if deadline > now_ms:
                break
            out.append(J.AttemptRef(job_id=self._m.by_seq[seq].id, attempt=attempt))
        return out

    def check_fence(self, job_id: str, attempt: int) -> scheduler_pb2.CheckFenceResponse:
        job = self._m.jobs.get(job_id)
        if job is None:
            return scheduler_pb2.CheckFenceResponse(current=False)
        now = current_attempt(job)
        last = job.attempts[-1].number if job.attempts else 0
        current = now is not None and now.number == attempt
        return scheduler_pb2.CheckFenceResponse(current=current, current_attempt=last, state=job.state)

    # --- schedules ------------------------------------------------------------------------------

    def schedules(self) -> list[scheduler_pb2.Schedule]:
        """Every schedule by name, without next_fire_times (see `schedule_view`)."""
        return [_schedule_copy(s) for _, s in sorted(self._m.schedules.items())]

    def schedule(self, name: str) -> scheduler_pb2.Schedule | None:
        found = self._m.schedules.get(name)
        return _schedule_copy(found) if found is not None else None

    def known_handlers(self) -> set[str]:
        out = set(BUILTIN_HANDLERS)
        for info in self._m.executors.values():
            out.update(info.handlers)
        return out

    def counters(self) -> dict[str, int]:
        m = self._m
        out = {
            f"jobs_{name.removeprefix('JOB_STATE_').lower()}": m.count(value)
            for name, value in J.JobState.items()
            if value
        }
        out["jobs_total"] = len(m.jobs)
        out["stale_results_refused"] = m.counters.stale_results_refused
        out["refused_commands"] = m.counters.refused_commands
        out["refused_items"] = m.counters.refused_items
        out["attempts_current"] = sum(len(v) for v in m.on_executor.values())
        out["schedules"] = len(m.schedules)
        out["schedule_fires"] = sum(s.fired_count for s in m.schedules.values())
        out["schedule_skips"] = sum(s.skipped_count for s in m.schedules.values())
        return out

    def job_counts(self) -> dict[str, int]:
        """Jobs by state name (without the JOB_STATE_ prefix), exact at the applied index."""
        return {state_name(value): self._m.count(value) for value in J.JobState.values() if value}

    def slots_in_use(self, executor_id: str) -> int:
        """Slots taken by the executor's current attempts (a job's slots, 0 counting as 1)."""
        return self._m.slots_in_use(executor_id)


def _meta(m: Model) -> dict[bytes, int]:
    return {
        b"format": META_FORMAT,
        b"applied_index": m.applied_index,
        b"next_seq": m.next_seq,
        b"stale_results_refused": m.counters.stale_results_refused,
        b"refused_commands": m.counters.refused_commands,
        b"refused_items": m.counters.refused_items,
    }


def _schedule_copy(schedule: scheduler_pb2.Schedule) -> scheduler_pb2.Schedule:
    out = scheduler_pb2.Schedule()
    out.CopyFrom(schedule)
    return out


__all__ = ["BUILTIN_HANDLERS", "COLUMN_FAMILIES", "SchedulerState", "StateDB"]

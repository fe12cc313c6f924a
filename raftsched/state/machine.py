"""The replicated scheduler state machine (SPEC §5-§7), applied on every node from committed entries.

RocksDB is the store of record (`raftsched.state.keys` has the layout); memory holds the active
part (`raftsched.state.model`). `apply` runs the handlers over a batch of entries, then writes every
record they changed, every index entry that follows from it, the counts and the new applied index
in ONE WriteBatch. The batch is not synced: the Raft log is, and replaying it is deterministic, so
after a crash the entries above the durable applied index are simply applied again.

Reads between two applies (the API's, the leader scheduler's) see RocksDB as of the applied index:
`apply` is synchronous, so no read can observe half of it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import Any, Protocol

from raftsched.jobstates import TERMINAL
from raftsched.state import keys, notify
from raftsched.state import snapshot as snap
from raftsched.state.handlers import apply_command, job_copy
from raftsched.state.lifecycle import state_name
from raftsched.state.listing import JobQuery, cut_page
from raftsched.state.migrate import STATE_FORMAT, check_format, migrate
from raftsched.state.model import LIVE, Before, Model, current_attempt
from raftsched.v1 import admin_pb2, commands_pb2, jobs_pb2, notify_pb2, scheduler_pb2

log = logging.getLogger(__name__)
J = jobs_pb2

COLUMN_FAMILIES = keys.FAMILIES
BUILTIN_HANDLERS = frozenset({"noop", "sleep", "echo", "fail"})
_SUCCEEDED = J.JOB_STATE_SUCCEEDED

JobListener = Callable[[jobs_pb2.Job], None]
Record = tuple[str, bytes, bytes]
View = tuple[str, Iterator[tuple[bytes, bytes]]]  # a family and its records as of one point, read once


class StateDB(Protocol):
    """What the state machine needs of `raftsched.storage.db.NodeDB`."""

    def cf(self, name: str) -> Any: ...  # a rocksdict view of a column family, raw bytes
    def handle(self, name: str) -> Any: ...  # a ColumnFamily handle for WriteBatch.put
    def batch(self) -> Any: ...
    def write(self, batch: Any, *, sync: bool) -> None: ...


class _DBReader:
    """`model.Reader` over the node's RocksDB (views are fetched per call: see NodeDB)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def get(self, family: str, key: bytes) -> bytes | None:
        value = self._db.cf(family).get(key)
        return bytes(value) if value is not None else None


class SchedulerState:
    """Deterministic `apply` of committed commands, read-only queries, and the record stream."""

    def __init__(self, db: StateDB) -> None:
        # No handle or view of `db` is kept: rocksdict holds the database open while one lives.
        self._db = db
        self._listeners: list[JobListener] = []
        # Called with (check id, index) right after a CheckHashCmd is applied (the node hashes).
        self.on_hash_point: Callable[[int, int], None] | None = None
        # Called after an apply that raised or cleared an alarm.
        self.on_alarms: Callable[[], None] | None = None
        self._m = self._load()

    @property
    def applied_index(self) -> int:
        return self._m.applied_index

    # --- apply ----------------------------------------------------------------------------------

    def apply(self, entries: Sequence[tuple[int, bytes | None]],
              wanted: Container[int] | None = None) -> list[commands_pb2.ApplyResult | None]:
        """Apply committed entries (index, command bytes or None for a no-op/config entry).

        Entries at or below the applied index were applied before a restart and are skipped with
        a None result. Never raises on any entry's content. `wanted`: the indexes whose results
        are read (None: all); the others' results are None, and what only they need (the copies
        of submitted jobs) is not built: a follower applies every submit without anyone waiting.
        """
        results: list[commands_pb2.ApplyResult | None] = []
        m = self._m
        last = m.applied_index
        for index, data in entries:
            if index <= last:
                results.append(None)
                continue
            # Invariant: committed entries are applied in order without gaps (Raft's log matching).
            assert index == last + 1, f"apply gap: entry {index} after applied {last}"
            m.begin_entry(index)
            m.results_wanted = wanted is None or index in wanted
            result = None if data is None else apply_command(m, data)
            results.append(result if m.results_wanted else None)
            last = index
            if m.hash_points:
                self._hash_point(index)
        m.results_wanted = True
        if last != self._m.applied_index:
            self._m.applied_index = last
            self._notify(self._flush())
        return results

    def _hash_point(self, index: int) -> None:
        """A CheckHashCmd was applied: write everything up to it, then let the node take a view
        of exactly this state (`views`: RocksDB iterators, cheap) to hash while apply goes on."""
        self._m.applied_index = index
        self._notify(self._flush())
        checks, self._m.hash_points = self._m.hash_points, []
        for check_id in checks:
            if self.on_hash_point is not None:
                self.on_hash_point(check_id, index)

    def _flush(self) -> list[jobs_pb2.Job]:
        """Write every pending change and the meta in one batch; returns the changed jobs."""
        m = self._m
        batch = self._db.batch()
        changed = self._stage_jobs(batch)
        self._stage_keys(batch)
        handle = self._db.handle(keys.EXECUTORS)
        for executor_id in m.dirty_executors:
            batch.put(executor_id.encode(), m.executors[executor_id].SerializeToString(deterministic=True), handle)
        handle = self._db.handle(keys.SCHEDULES)
        for name in m.dirty_schedules:
            schedule = m.schedules.get(name)
            if schedule is None:
                batch.delete(name.encode(), handle)
            else:
                batch.put(name.encode(), schedule.SerializeToString(deterministic=True), handle)
        alarms_changed = bool(m.dirty_alarms)
        handle = self._db.handle(keys.ALARMS)
        for node, name in m.dirty_alarms:
            alarm = m.alarms.get((node, name))
            if alarm is None:
                batch.delete(keys.alarm_key(node, name), handle)
            else:
                batch.put(keys.alarm_key(node, name), alarm.SerializeToString(deterministic=True), handle)
        self._stage_notify(batch)
        handle = self._db.handle(keys.META)
        meta = _meta(m)
        written = m.meta_written  # only what changed since the last flush (most counts do not)
        for meta_key, value in meta.items():
            if written.get(meta_key) != value:
                batch.put(meta_key, keys.u64(value), handle)
        self._db.write(batch, sync=False)
        m.meta_written = meta
        m.flushed()
        if alarms_changed and self.on_alarms is not None:
            self.on_alarms()
        return changed

    def _stage_jobs(self, batch: Any) -> list[jobs_pb2.Job]:
        m = self._m
        jobs_cf = self._db.handle(keys.JOBS)
        changed = []
        for job_id, before in m.dirty.items():
            job = m.active.get(job_id) or m.touched[job_id]
            batch.put(keys.job_key(job.seq), job.SerializeToString(deterministic=True), jobs_cf)
            old = _index_entries(job, before) if before is not None else {}
            new = _index_entries(job, Before(job.state, job.updated_ms))
            for (family, key), value in new.items():
                if old.get((family, key)) != value:
                    batch.put(key, value, self._db.handle(family))
            for family, key in old.keys() - new.keys():
                batch.delete(key, self._db.handle(family))
            changed.append(job)
        for job, on_disk in m.deleted.values():
            if on_disk is not None:
                batch.delete(keys.job_key(job.seq), jobs_cf)
                for family, key in _index_entries(job, on_disk):
                    batch.delete(key, self._db.handle(family))
        return changed

    def _stage_notify(self, batch: Any) -> None:
        m = self._m
        handle = self._db.handle(keys.SINKS)
        for name in m.dirty_sinks:
            sink = m.sinks.get(name)
            if sink is None:
                batch.delete(name.encode(), handle)
            else:
                batch.put(name.encode(), sink.SerializeToString(deterministic=True), handle)
        handle = self._db.handle(keys.OUTBOX)
        for (name, key), raw in m.outbox_writes.items():
            if raw is None:
                batch.delete(keys.outbox_key(name, key), handle)
            else:
                batch.put(keys.outbox_key(name, key), raw, handle)

    def _stage_keys(self, batch: Any) -> None:
        m = self._m
        idem, by_time = self._db.handle(keys.IDEM), self._db.handle(keys.IDEM_TIME)
        for key, time_ms in m.idem_del.items():
            batch.delete(key.encode(), idem)
            batch.delete(keys.idem_time_key(time_ms, key), by_time)
        for key, (time_ms, job_id) in m.idem_put.items():
            batch.put(key.encode(), keys.idem_value(time_ms, job_id), idem)
            batch.put(keys.idem_time_key(time_ms, key), b"", by_time)

    # --- listeners ------------------------------------------------------------------------------

    def add_listener(self, callback: JobListener) -> None:
        """Call `callback` after each apply with every job that changed (a copy it may keep)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: JobListener) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self, changed: list[jobs_pb2.Job]) -> None:
        if not self._listeners:
            return
        for original in changed:
            job = job_copy(original)
            for listener in list(self._listeners):
                try:
                    listener(job)
                except Exception:
                    # The one broad except: a watcher's bug must not break apply on this node.
                    log.exception("job listener %r failed on %s", listener, job.id)

    # --- loading --------------------------------------------------------------------------------

    def _load(self) -> Model:
        """Read what memory holds: the meta, executors, schedules, and the live jobs only."""
        fmt = check_format(self._db)
        if fmt is not None and fmt < STATE_FORMAT:
            migrate(self._db, fmt)
        m = Model(_DBReader(self._db))
        meta = {bytes(k): keys.read_u64(v) for k, v in self._db.cf(keys.META).items()}
        m.applied_index = meta.get(b"applied_index", 0)
        m.next_seq = meta.get(b"next_seq", 1)
        for name in ("stale_results_refused", "refused_commands", "refused_items", "jobs_purged", "keys_forgotten"):
            setattr(m.counters, name, meta.get(name.encode(), 0))
        m.counts = {value: meta.get(_count_key(value), 0) for value in J.JobState.values() if value}
        for key, value in self._db.cf(keys.EXECUTORS).items():
            m.executors[bytes(key).decode()] = J.ExecutorInfo.FromString(value)
        for key, value in self._db.cf(keys.SCHEDULES).items():
            m.schedules[bytes(key).decode()] = scheduler_pb2.Schedule.FromString(value)
        for _key, value in self._db.cf(keys.ALARMS).items():
            alarm = admin_pb2.Alarm.FromString(value)
            m.alarms[(alarm.node, alarm.alarm)] = alarm
        for key, value in self._db.cf(keys.SINKS).items():
            m.sinks[bytes(key).decode()] = notify_pb2.NotifySink.FromString(value)
        for key in self._db.cf(keys.OUTBOX).keys():  # noqa: SIM118 (a rocksdict view); oldest first
            name, event_key = keys.outbox_key_parts(bytes(key))
            m.outbox.setdefault(name, {})[event_key] = None
        m.event_counts = {kind: meta[_event_count_key(kind)] for kind in notify.EVENT_TYPES
                          if _event_count_key(kind) in meta}
        live = sorted(self._live_jobs(), key=lambda job: job.seq)  # ordered indexes as before the restart
        for job in live:
            m.index_live(job)
        return m

    def _live_jobs(self) -> Iterator[jobs_pb2.Job]:
        jobs = self._db.cf(keys.JOBS)
        for state in sorted(LIVE):
            for seq in self._index_walk(keys.BY_STATE, keys.state_prefix(state), None, newest_first=False):
                raw = jobs.get(keys.job_key(seq))
                if raw is None:
                    raise AssertionError(f"{keys.BY_STATE} lists job j{seq} that {keys.JOBS} lacks")
                yield J.Job.FromString(raw)

    # --- the record stream (tests, format-1 backups, replica comparison) ------------------------

    def records(self) -> Iterator[Record]:
        """Every record of every family, in family then key order: equal states, equal records."""
        for name in COLUMN_FAMILIES:
            for key, value in self._db.cf(name).items():
                yield name, bytes(key), bytes(value)

    def fingerprint(self) -> bytes:
        """A digest of the stored state (what RocksDB holds, not what memory believes)."""
        digest = StateDigest(self.views())
        while not digest.step(1 << 30):
            pass
        return digest.value()

    def views(self) -> list[View]:
        """Every family's records as of now, for `StateDigest` to read while apply goes on: one
        RocksDB iterator per family, all made here between two applies. An iterator whose
        ReadOptions name no snapshot reads from one taken when it is made, and pins the memtables
        and files it needs: later writes, flushes, compactions, even the family being dropped (a
        snapshot install) do not reach it. Drop the views soon: what they pin stays in memory.

        Not rocksdict's `Snapshot`: its `iter()`/`items()` set the snapshot on a ReadOptions they
        then throw away and read the live database (rocksdict 0.3.29, src/snapshot.rs; its point
        reads do use it), so a node hashed entries applied after the check and was called CORRUPT."""
        return [(name, self._db.cf(name).items()) for name in COLUMN_FAMILIES]

    def snapshot(self) -> bytes:
        """The record stream as one checked blob (`raftsched.state.snapshot`); for small states."""
        return snap.encode(COLUMN_FAMILIES, self.records())

    def restore(self, data: bytes) -> None:
        """Replace all state with a blob from `snapshot()` (checked first: a bad one changes nothing)."""
        self.replace_records(snap.decode(data, COLUMN_FAMILIES))

    def replace_records(self, records: Iterable[Record]) -> None:
        """Replace all state with these records, then reload (synced: the log below may go)."""
        batch = self._db.batch()
        for name in COLUMN_FAMILIES:
            for key, _value in self._db.cf(name).items():
                batch.delete(bytes(key), self._db.handle(name))
        for name, key, value in records:
            batch.put(key, value, self._db.handle(name))
        self._db.write(batch, sync=True)
        self.reload()

    def reload(self) -> None:
        """Forget memory and read the state again from RocksDB (after an install or a restore)."""
        self._m = self._load()

    # --- queries (read-only; every message returned is a copy) ----------------------------------

    def get_job(self, job_id: str) -> jobs_pb2.Job | None:
        job = self._m.peek(job_id)
        return job_copy(job) if job is not None else None

    def job_state(self, job_id: str) -> int | None:
        """The job's state (a `JobState` value), or None when there is no such job: `get_job`
        without the copy, for callers that scan many jobs."""
        job = self._m.peek(job_id)
        return job.state if job is not None else None

    def job_by_key(self, key: str) -> jobs_pb2.Job | None:
        job_id = self._m.idem_lookup(key)
        return self.get_job(job_id) if job_id is not None else None

    def list_jobs(self, query: JobQuery) -> tuple[list[jobs_pb2.Job], str]:
        """One page of a walk (see `raftsched.state.listing`); read from RocksDB as of now."""
        if query.schedule:
            walk = self._jobs_of(self._index_walk(keys.BY_SCHEDULE, keys.schedule_prefix(query.schedule),
                                                  query.after, query.newest_first))
        elif query.state:
            walk = self._jobs_of(self._index_walk(keys.BY_STATE, keys.state_prefix(query.state),
                                                  query.after, query.newest_first))
        else:
            walk = self._all_jobs(query.after, query.newest_first)
        return cut_page(query, walk)

    def _jobs_of(self, seqs: Iterator[int]) -> Iterator[tuple[int, jobs_pb2.Job | None]]:
        jobs = self._db.cf(keys.JOBS)
        for seq in seqs:
            raw = jobs.get(keys.job_key(seq))
            yield seq, J.Job.FromString(raw) if raw is not None else None

    def _all_jobs(self, after: int | None, newest_first: bool) -> Iterator[tuple[int, jobs_pb2.Job | None]]:
        for key, value in _walk(self._db.cf(keys.JOBS), b"", after, newest_first):
            yield keys.read_u64(key), J.Job.FromString(value)

    def _index_walk(self, family: str, prefix: bytes, after: int | None, newest_first: bool) -> Iterator[int]:
        """The seqs under `prefix` (each key ends with its seq), past `after` in walk order."""
        for key, _value in _walk(self._db.cf(family), prefix, after, newest_first):
            yield keys.read_u64(key[-8:])

    def executors(self) -> list[jobs_pb2.ExecutorInfo]:
        return [_copy(info) for _, info in sorted(self._m.executors.items())]

    def executor(self, executor_id: str) -> jobs_pb2.ExecutorInfo | None:
        """Replicated fields only; the leader adds running/free_slots and its local view."""
        info = self._m.executors.get(executor_id)
        return _copy(info) if info is not None else None

    def queued(self, now_ms: int, limit: int) -> list[jobs_pb2.Job]:
        """QUEUED jobs whose backoff has passed: higher priority first, then submit order."""
        return [job_copy(job) for job in itertools.islice(self.iter_queued(now_ms), limit)]

    def iter_queued(self, now_ms: int) -> Iterator[jobs_pb2.Job]:
        """As `queued`, lazily and without copies, for the dispatcher: read the jobs only, and
        finish with the iterator before anything else can apply. Jobs in backoff are stepped over
        without being read."""
        for seq, not_before in self._m.queued():
            if not_before <= now_ms:
                job = self._m.by_seq(seq)
                assert job is not None, f"queued job j{seq} is missing"
                yield job

    def attempts_on(self, executor_id: str) -> list[jobs_pb2.AttemptRef]:
        running = self._m.on_executor.get(executor_id, {})
        refs = [J.AttemptRef(job_id=job_id, attempt=n) for job_id, n in running.items()]
        return sorted(refs, key=lambda ref: self._m.active[ref.job_id].seq)

    def timed_out(self, now_ms: int) -> list[jobs_pb2.AttemptRef]:
        """Current attempts past their deadline (started_ms, else assigned_ms, + timeout_ms)."""
        out: list[jobs_pb2.AttemptRef] = []
        for deadline, seq, attempt in self._m.deadlines:
            if deadline > now_ms:
                break
            out.append(J.AttemptRef(job_id=f"j{seq}", attempt=attempt))
        return out

    def check_fence(self, job_id: str, attempt: int) -> scheduler_pb2.CheckFenceResponse:
        job = self._m.peek(job_id)
        if job is None:
            return scheduler_pb2.CheckFenceResponse(current=False)
        now = current_attempt(job)
        last = job.attempts[-1].number if job.attempts else 0
        current = now is not None and now.number == attempt
        return scheduler_pb2.CheckFenceResponse(current=current, current_attempt=last, state=job.state)

    def is_held(self, job_id: str) -> bool:
        return self._m.is_held(job_id)

    def alarms(self) -> list[admin_pb2.Alarm]:
        return [_copy(alarm) for _, alarm in sorted(self._m.alarms.items())]

    def alarms_of(self, node: str) -> list[str]:
        return sorted(name for (who, name) in self._m.alarms if who == node)

    # --- history the leader may purge (raftsched.scheduler.retention) ---------------------------

    def expired_jobs(self, ended_before_ms: int, limit: int, scan_limit: int) -> list[str]:
        """Finished jobs that ended before the cutoff and that no live job depends on, oldest first."""
        out: list[str] = []
        for looked, (key, _) in enumerate(_walk(self._db.cf(keys.ENDED), b"", None, False), start=1):
            ended_ms, seq = keys.ended_key_parts(key)
            if ended_ms >= ended_before_ms or len(out) >= limit or looked > scan_limit:
                break
            if not self._m.is_held(f"j{seq}"):
                out.append(f"j{seq}")
        return out

    def excess_schedule_jobs(self, name: str, keep_succeeded: int, keep_failed: int, limit: int) -> list[str]:
        """A schedule's finished jobs beyond its history limits (0 = no limit), newest kept."""
        seen = {True: 0, False: 0}
        out: list[str] = []
        for key, value in _walk(self._db.cf(keys.BY_SCHEDULE), keys.schedule_prefix(name), None, True):
            state = value[0] if value else 0
            if state not in TERMINAL:
                continue
            kind = state == _SUCCEEDED
            seen[kind] += 1
            keep = keep_succeeded if kind else keep_failed
            job_id = f"j{keys.schedule_key_seq(key)}"
            if keep and seen[kind] > keep and not self._m.is_held(job_id):
                out.append(job_id)
                if len(out) >= limit:
                    break
        return out

    def expired_keys(self, made_before_ms: int, limit: int) -> list[str]:
        """Idempotency keys made before the cutoff, oldest first."""
        out: list[str] = []
        for key, _ in _walk(self._db.cf(keys.IDEM_TIME), b"", None, False):
            time_ms, idem_key = keys.idem_time_key_parts(key)
            if time_ms >= made_before_ms or len(out) >= limit:
                break
            out.append(idem_key)
        return out

    # --- notification sinks (SPEC §10) ---------------------------------------------------------

    def notify_sinks(self) -> list[notify_pb2.NotifySink]:
        """Every sink by name, with its secret (for the leader's delivery; the API strips it)."""
        return [_copy(s) for _, s in sorted(self._m.sinks.items())]

    def notify_sink(self, name: str) -> notify_pb2.NotifySink | None:
        found = self._m.sinks.get(name)
        return _copy(found) if found is not None else None

    def pending_events(self, sink: str, *, skip: Callable[[str], bool], limit: int,
                       scan: int) -> list[notify_pb2.NotifyEvent]:
        """Up to `limit` events of a sink's outbox, oldest first, stepping over those `skip` names
        (in flight, backing off) and looking at `scan` ids at most."""
        outbox = self._m.outbox.get(sink, {})
        view = self._db.cf(keys.OUTBOX)
        out: list[notify_pb2.NotifyEvent] = []
        for key in itertools.islice(outbox, scan):
            if len(out) >= limit:
                break
            index, n = keys.read_u64(key[:8]), int.from_bytes(key[8:], "big")
            if skip(notify.event_id(index, n)):
                continue
            raw = view.get(keys.outbox_key(sink, key))
            assert raw is not None, f"outbox of {sink} lists {index}.{n} that {keys.OUTBOX} lacks"
            out.append(notify_pb2.NotifyEvent.FromString(raw))
        return out

    def is_pending(self, sink: str, event_id: str) -> bool:
        key = notify.key_of(event_id)
        return key is not None and key in self._m.outbox.get(sink, {})

    def event_counts(self) -> dict[str, int]:
        """Events made since the cluster began, by type (replicated)."""
        return dict(self._m.event_counts)

    # --- schedules ------------------------------------------------------------------------------

    def schedules(self) -> list[scheduler_pb2.Schedule]:
        """Every schedule by name, without next_fire_times (see `schedule_view`)."""
        return [_copy(s) for _, s in sorted(self._m.schedules.items())]

    def schedule(self, name: str) -> scheduler_pb2.Schedule | None:
        found = self._m.schedules.get(name)
        return _copy(found) if found is not None else None

    def last_jobs(self) -> dict[str, str]:
        """Each schedule's last job id, by name (no copies: read after every apply by checkers)."""
        return {name: s.last_job_id for name, s in self._m.schedules.items()}

    def known_handlers(self) -> frozenset[str]:
        """The built-in handler names and those of every executor ever registered."""
        m = self._m
        if m.executor_handlers is None:  # an executor changed (put_executor), or memory was loaded
            m.executor_handlers = BUILTIN_HANDLERS.union(*(info.handlers for info in m.executors.values()))
        return m.executor_handlers

    def counters(self) -> dict[str, int]:
        m = self._m
        out = {f"jobs_{name.lower()}": n for name, n in self.job_counts().items()}
        out["jobs_total"] = sum(m.counts.values())
        out["stale_results_refused"] = m.counters.stale_results_refused
        out["refused_commands"] = m.counters.refused_commands
        out["refused_items"] = m.counters.refused_items
        out["jobs_purged"] = m.counters.jobs_purged
        out["keys_forgotten"] = m.counters.keys_forgotten
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


class StateDigest:
    """A digest of every record of the given views, computed a bounded number of records at a
    time (`step`), so a node can hash millions of records without holding its event loop."""

    def __init__(self, views: list[View]) -> None:
        self._digest = hashlib.blake2b(digest_size=16)
        self._views = iter(views)
        self._name = ""
        self._items: Iterator[tuple[bytes, bytes]] | None = None

    def step(self, budget: int) -> bool:
        """Hash up to `budget` records; True when every record has been hashed."""
        while budget > 0:
            if self._items is None:
                nxt = next(self._views, None)
                if nxt is None:
                    return True
                self._name, self._items = nxt
            for key, value in itertools.islice(self._items, budget):
                key, value = bytes(key), bytes(value)
                self._digest.update(b"%s\x00%d:%b%d:%b" % (self._name.encode(), len(key), key, len(value), value))
                budget -= 1
            else:
                if budget > 0:
                    self._items = None  # this family is done
        return False

    def value(self) -> bytes:
        return self._digest.digest()


def _index_entries(job: jobs_pb2.Job, at: Before) -> dict[tuple[str, bytes], bytes]:
    """The index entries a job has when in state `at.state` (and, finished, ended at updated_ms)."""
    out = {(keys.BY_STATE, keys.state_key(at.state, job.seq)): b""}
    terminal = at.state in TERMINAL
    if terminal:
        out[(keys.ENDED, keys.ended_key(at.updated_ms, job.seq))] = b""
    if job.schedule_id:
        out[(keys.BY_SCHEDULE, keys.schedule_key(job.schedule_id, job.seq))] = bytes([at.state if terminal else 0])
    return out


def _walk(view: Any, prefix: bytes, after: int | None, newest_first: bool) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) under `prefix` whose trailing u64 is past `after`, in key order or reversed.
    Keys must be `prefix + ... + u64`: every family walked here has its seq (or id) last."""
    if newest_first and after == 0:
        return
    it = view.iter()
    try:
        if newest_first:
            it.seek_for_prev(prefix + (keys.u64(after - 1) if after is not None else b"\xff" * 16))
        else:
            it.seek(prefix + keys.u64(after + 1) if after is not None else prefix)
        while it.valid():
            key = bytes(it.key())
            if not key.startswith(prefix):
                return
            yield key, bytes(it.value())
            if newest_first:
                it.prev()
            else:
                it.next()
    finally:
        del it  # an iterator keeps the database open


def _count_key(state: int) -> bytes:
    return _COUNT_KEYS.get(state) or b"count_" + state_name(state).lower().encode()


_COUNT_KEYS = {state: b"count_" + state_name(state).lower().encode() for state in J.JobState.values()}


def _meta(m: Model) -> dict[bytes, int]:
    out = {
        b"format": STATE_FORMAT,
        b"applied_index": m.applied_index,
        b"next_seq": m.next_seq,
        b"stale_results_refused": m.counters.stale_results_refused,
        b"refused_commands": m.counters.refused_commands,
        b"refused_items": m.counters.refused_items,
        b"jobs_purged": m.counters.jobs_purged,
        b"keys_forgotten": m.counters.keys_forgotten,
    }
    out.update({_count_key(state): n for state, n in m.counts.items()})
    out.update({_event_count_key(kind): n for kind, n in m.event_counts.items()})
    return out


def _event_count_key(kind: str) -> bytes:
    return b"notify_events_" + kind.encode()


def _copy(message: Any) -> Any:
    out = type(message)()
    out.CopyFrom(message)
    return out


__all__ = ["BUILTIN_HANDLERS", "COLUMN_FAMILIES", "SchedulerState", "StateDB"]

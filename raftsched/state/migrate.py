"""State formats and the one-time upgrade of a data directory written by an earlier version.

    format 1  (raftsched 0.1: every job in memory)   sm_jobs, sm_idem (key -> job id), sm_executors,
                                                     sm_schedules, sm_meta
    format 2  (history in RocksDB, with retention)   format 1 plus the indexes sm_by_state,
                                                     sm_ended, sm_by_sched and sm_idem_time; sm_idem
                                                     values carry the key's time; counts in sm_meta

A node of this version opens a format-1 directory by migrating it once (logged), and refuses a
newer format with a message naming both versions and the runbook step. The migration only adds
records and rewrites values in a form it recognises, and writes the new format number last, so a
node killed half-way migrates again from the start on its next start.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Protocol

from raftsched.jobstates import TERMINAL
from raftsched.state import keys
from raftsched.storage.errors import StoreError
from raftsched.v1 import jobs_pb2, scheduler_pb2

log = logging.getLogger(__name__)
STATE_FORMAT = 2
RUNBOOK = "docs/operations.md, 'Upgrading a node in place'"
_BATCH_RECORDS = 10_000


class MigrateDB(Protocol):
    def cf(self, name: str) -> Any: ...
    def handle(self, name: str) -> Any: ...
    def batch(self) -> Any: ...
    def write(self, batch: Any, *, sync: bool) -> None: ...


def check_format(db: MigrateDB) -> int | None:
    """The stored state format (None: a new, empty state machine); refuses an unknown one."""
    raw = db.cf(keys.META).get(b"format")
    if raw is None:
        return None if _empty(db) else 1
    fmt = keys.read_u64(bytes(raw))
    if fmt > STATE_FORMAT:
        raise StoreError(
            f"the state machine in this data directory has format {fmt}, written by a newer raftsched; "
            f"this version reads formats 1 to {STATE_FORMAT} (see {RUNBOOK})")
    return fmt


def _empty(db: MigrateDB) -> bool:
    return all(not _any(db.cf(name)) for name in keys.FORMAT_1_FAMILIES)


def _any(view: Any) -> bool:
    it = view.iter()
    try:
        it.seek_to_first()
        return bool(it.valid())
    finally:
        del it


def migrate(db: MigrateDB, fmt: int) -> None:
    """Upgrade the state machine from `fmt` to STATE_FORMAT in place."""
    if fmt != 1:
        raise StoreError(f"cannot migrate state format {fmt} (see {RUNBOOK})")
    started = time.monotonic()
    log.warning("migrating the state machine from format 1 to %d (this happens once)", STATE_FORMAT)
    writer = _Writer(db)
    counts = _index_jobs(db, writer)
    keyed = _time_keys(db, writer)
    for key, value in db.cf(keys.SCHEDULES).items():
        schedule = scheduler_pb2.Schedule.FromString(value)
        if schedule.skipped and not schedule.last_skipped_time:
            schedule.last_skipped_time = schedule.skipped[-1].scheduled_time
            writer.put(keys.SCHEDULES, bytes(key), schedule.SerializeToString(deterministic=True))
    for state, n in counts.items():
        writer.put(keys.META, b"count_" + jobs_pb2.JobState.Name(state).removeprefix("JOB_STATE_").lower().encode(),
                   keys.u64(n))
    writer.put(keys.META, b"format", keys.u64(STATE_FORMAT))  # last: a crash before it migrates again
    writer.flush(sync=True)
    log.warning("migrated the state machine to format %d: %d jobs, %d idempotency keys in %.1f s",
                STATE_FORMAT, sum(counts.values()), keyed, time.monotonic() - started)


def _index_jobs(db: MigrateDB, writer: _Writer) -> Counter[int]:
    counts: Counter[int] = Counter()
    for _key, value in db.cf(keys.JOBS).items():
        job = jobs_pb2.Job.FromString(value)
        counts[job.state] += 1
        writer.put(keys.BY_STATE, keys.state_key(job.state, job.seq), b"")
        terminal = job.state in TERMINAL
        if terminal:
            writer.put(keys.ENDED, keys.ended_key(job.updated_ms, job.seq), b"")
        if job.schedule_id:
            writer.put(keys.BY_SCHEDULE, keys.schedule_key(job.schedule_id, job.seq),
                       bytes([job.state if terminal else 0]))
    return counts


def _time_keys(db: MigrateDB, writer: _Writer) -> int:
    """Format-1 idempotency values are the job id (`j...`); format 2 puts the key's time first
    (the job's submit time), which starts with a zero byte for any real time: so a value already
    converted by an interrupted migration is recognised and left alone."""
    jobs = db.cf(keys.JOBS)
    n = 0
    for key, value in db.cf(keys.IDEM).items():
        raw = bytes(value)
        if not raw.startswith(b"j"):
            continue
        job_id = raw.decode()
        seq = keys.seq_of(job_id)
        record = jobs.get(keys.job_key(seq)) if seq is not None else None
        made = jobs_pb2.Job.FromString(record).submitted_ms if record is not None else 0
        idem_key = bytes(key).decode()
        writer.put(keys.IDEM, bytes(key), keys.idem_value(made, job_id))
        writer.put(keys.IDEM_TIME, keys.idem_time_key(made, idem_key), b"")
        n += 1
    return n


class _Writer:
    """Puts in bounded batches (a migration of millions of records must not build one batch)."""

    def __init__(self, db: MigrateDB) -> None:
        self._db = db
        self._batch = db.batch()
        self._n = 0

    def put(self, family: str, key: bytes, value: bytes) -> None:
        self._batch.put(key, value, self._db.handle(family))
        self._n += 1
        if self._n >= _BATCH_RECORDS:
            self.flush(sync=False)

    def flush(self, *, sync: bool) -> None:
        self._db.write(self._batch, sync=sync)
        self._batch = self._db.batch()
        self._n = 0

"""Test harness for the scheduler state machine: a node's RocksDB, a log of applied entries, a clock
the test moves by hand, and a naive recount of every index to check the incremental ones against.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raftsched.jobstates import TERMINAL
from raftsched.state import commands as c
from raftsched.state import keys
from raftsched.state.listing import query_from_request
from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState
from raftsched.storage.db import NodeDB
from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2

J = jobs_pb2
T0 = 1_700_000_000_000


class Node:
    """One node's state machine over a real NodeDB; `log` keeps every entry applied, by index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = NodeDB(path, column_families=COLUMN_FAMILIES)
        self.state = SchedulerState(self.db)
        self.log: list[bytes | None] = []  # entry i+1 at position i
        self.now = T0

    def close(self) -> None:
        self.db.close()

    def reopen(self) -> None:
        """Simulate a restart: close RocksDB and rebuild the state machine from it."""
        del self.state
        self.db.close()
        self.db = NodeDB(self.path, column_families=COLUMN_FAMILIES)
        self.state = SchedulerState(self.db)

    def replay(self, log: list[bytes | None]) -> None:
        """Apply a whole log in one batch, as a follower catching up would."""
        self.state.apply(list(enumerate(log, start=len(self.log) + 1)))
        self.log.extend(log)

    def append(self, data: bytes | None) -> commands_pb2.ApplyResult | None:
        self.log.append(data)
        return self.state.apply([(len(self.log), data)])[0]

    def run(self, cmd: commands_pb2.Command, *, at: int | None = None) -> commands_pb2.ApplyResult:
        result = self.append(c.encode(cmd, time_ms=self.now if at is None else at))
        assert result is not None
        check_indexes(self.state)
        return result

    def tick(self, ms: int) -> None:
        self.now += ms

    def submit(self, handler: str = "noop", **fields: Any) -> jobs_pb2.Job:
        result = self.run(c.submit(J.JobSpec(handler=handler, **fields)))
        assert not result.submitted[0].error, result.submitted[0].error
        return result.submitted[0].job

    def up(self, executor: str = "e1", slots: int = 4, **fields: Any) -> None:
        assert not self.run(c.executor_up(executor, slots=slots, **fields)).error

    def list_jobs(self, **request: Any) -> tuple[list[jobs_pb2.Job], str]:
        return list_page(self.state, **request)

    def job(self, job_id: str) -> jobs_pb2.Job:
        job = self.state.get_job(job_id)
        assert job is not None
        return job

    def assign(self, job_id: str, executor: str = "e1", attempt: int | None = None) -> commands_pb2.ApplyResult:
        if attempt is None:
            attempts = self.job(job_id).attempts
            attempt = (attempts[-1].number if attempts else 0) + 1
        return self.run(c.assign([(job_id, attempt, executor)]))

    def start(self, job_id: str, attempt: int, executor: str = "e1") -> commands_pb2.ApplyResult:
        return self.run(c.started(executor, [(job_id, attempt)]))

    def finish(self, job_id: str, attempt: int, end: int, executor: str = "e1", **kw: Any) -> Any:
        return self.run(c.finished(executor, [c.finished_item(job_id, attempt, end, **kw)]))


@contextmanager
def temp_node() -> Iterator[Node]:
    """A node in a fresh directory (for hypothesis tests, where function fixtures do not reset)."""
    # tmpfs where there is one: RocksDB's fsyncs on open make a disk directory 10x slower here.
    shm = Path("/dev/shm")
    path = Path(tempfile.mkdtemp(prefix="raftsched-sm-", dir=shm if shm.is_dir() else None))
    node = Node(path / "db")
    try:
        yield node
    finally:
        node.close()
        shutil.rmtree(path, ignore_errors=True)


def list_page(sm: SchedulerState, **request: Any) -> tuple[list[jobs_pb2.Job], str]:
    """One ListJobs page, the request given as ListJobsRequest fields (checked as the API does)."""
    return sm.list_jobs(query_from_request(scheduler_pb2.ListJobsRequest(**request)))


def all_jobs(sm: SchedulerState, **request: Any) -> list[jobs_pb2.Job]:
    """Every job of a full walk through the paging API."""
    jobs: list[jobs_pb2.Job] = []
    token = ""
    while True:
        page, token = list_page(sm, page_size=1000, page_token=token, **request)
        jobs.extend(page)
        if not token:
            return jobs


def check_indexes(state: SchedulerState) -> None:
    """Recount every incremental index the slow way and compare (the naive version of each)."""
    jobs = all_jobs(state)
    seqs = [job.seq for job in jobs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    far = 2**64
    ready = sorted((j for j in jobs if j.state == J.JOB_STATE_QUEUED), key=lambda j: (-j.spec.priority, j.seq))
    assert [j.id for j in state.queued(far, 10**6)] == [j.id for j in ready]
    current = {}
    for job in jobs:
        last = job.attempts[-1] if job.attempts else None
        live = last is not None and last.end == J.ATTEMPT_END_UNSPECIFIED
        # A job has a current attempt exactly when it is ASSIGNED or RUNNING.
        assert live == (job.state in (J.JOB_STATE_ASSIGNED, J.JOB_STATE_RUNNING)), job
        assert [a.number for a in job.attempts] == list(range(1, len(job.attempts) + 1))
        assert all(a.end != J.ATTEMPT_END_UNSPECIFIED for a in job.attempts[:-1])
        if live:
            current.setdefault(last.executor, []).append((job.id, last.number))
    for executor, refs in current.items():
        assert [(r.job_id, r.attempt) for r in state.attempts_on(executor)] == refs
    counted = state.counters()
    for name, value in J.JobState.items():
        if value:
            key = "jobs_" + name.removeprefix("JOB_STATE_").lower()
            assert counted[key] == sum(1 for j in jobs if j.state == value), key
    timed = {(r.job_id, r.attempt) for r in state.timed_out(far)}
    expect = {(j.id, j.attempts[-1].number) for j in jobs if j.spec.timeout_ms and j.id in _live_ids(current)}
    assert timed == expect
    check_store(state, jobs)


def check_store(state: SchedulerState, jobs: list[jobs_pb2.Job]) -> None:
    """The RocksDB indexes and counts against a recount from the job records, and memory against
    the live jobs (nothing finished is held in memory but the bounded cache)."""
    records: dict[str, dict[bytes, bytes]] = {}
    for family, key, value in state.records():
        records.setdefault(family, {})[key] = value
    assert {keys.read_u64(k) for k in records.get(keys.JOBS, {})} == {j.seq for j in jobs}
    assert set(records.get(keys.BY_STATE, {})) == {keys.state_key(j.state, j.seq) for j in jobs}
    ended = {keys.ended_key(j.updated_ms, j.seq) for j in jobs if j.state in TERMINAL}
    assert set(records.get(keys.ENDED, {})) == ended
    assert records.get(keys.BY_SCHEDULE, {}) == {
        keys.schedule_key(j.schedule_id, j.seq): bytes([j.state if j.state in TERMINAL else 0])
        for j in jobs if j.schedule_id}
    idem = {k.decode(): keys.idem_value_parts(v) for k, v in records.get(keys.IDEM, {}).items()}
    assert set(records.get(keys.IDEM_TIME, {})) == {keys.idem_time_key(t, k) for k, (t, _) in idem.items()}
    by_id = {j.id: j for j in jobs}
    for key, (_, job_id) in idem.items():
        assert job_id in by_id and by_id[job_id].spec.idempotency_key == key, (key, job_id)
    meta = records.get(keys.META, {})
    for name, value in J.JobState.items():
        if value:
            stored = meta.get(b"count_" + name.removeprefix("JOB_STATE_").lower().encode(), keys.u64(0))
            assert keys.read_u64(stored) == sum(1 for j in jobs if j.state == value), name
    m = state._m
    assert set(m.active) == {j.id for j in jobs if j.state in (J.JOB_STATE_ASSIGNED, J.JOB_STATE_RUNNING)}
    assert not m.touched and not m.dirty and not m.deleted
    assert all(j.state not in TERMINAL for j in m.cache.values())
    live = [j for j in jobs if j.state not in TERMINAL]
    expect_dependents: dict[str, list[str]] = {}
    for job in live:
        for dep in job.spec.depends_on:
            assert dep in by_id, f"{job.id} depends on {dep}, which was deleted"
            if job.id not in expect_dependents.setdefault(dep, []):  # depends_on may repeat an id
                expect_dependents[dep].append(job.id)
    assert {k: list(v) for k, v in m.dependents.items()} == expect_dependents


def _live_ids(current: dict[str, list[tuple[str, int]]]) -> set[str]:
    return {job_id for refs in current.values() for job_id, _ in refs}

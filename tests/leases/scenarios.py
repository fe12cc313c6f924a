"""The long-fault scenario shared by the tests and scripts/lease_figures.py.

Four ledger jobs run on e1 and e2 (spread by the dispatcher); e1 is then cut off (or frozen) until
every job that ran on it has started its second attempt on e2. The fault is ended (after an
optional check while the re-runs are still running), and the scenario waits for every job to end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from raftsched.client import ClientError
from raftsched.jobstates import TERMINAL
from raftsched.v1 import jobs_pb2

from .harness import (
    Interval,
    LeaseCluster,
    Ledger,
    ledger_task,
    submit_ledger_job,
    wait_for,
)

JOBS = 4
ITERATIONS = 80  # ~8 s of ledger lines per attempt (longer on a loaded machine)


@dataclass
class LongFaultRun:
    t_fault_ns: int  # wall clock when the fault began
    victims: list[str]  # jobs whose first attempt ran on e1
    others: list[str]
    jobs: dict[str, jobs_pb2.Job]  # final records
    ledger: dict[str, dict[int, Interval]]
    leader_lease_end_ns: int  # a lower bound of when e1's lease ends on the leader's side (0: unknown)
    sink: Path

    def killed_after_s(self, job: str) -> float:
        """Fault start -> the first attempt's last ledger line."""
        return (self.ledger[job][1].last_ns - self.t_fault_ns) / 1e9

    def rerun_after_s(self, job: str) -> float:
        """Fault start -> the second attempt's first ledger line."""
        return (self.ledger[job][2].first_ns - self.t_fault_ns) / 1e9

    def requeued_after_s(self, job: str) -> float:
        """Fault start -> the leader ended the first attempt (declared it lost) and re-queued the job."""
        return self.jobs[job].attempts[0].finished_ms / 1e3 - self.t_fault_ns / 1e9


def run_long_fault(c: LeaseCluster, work: Path, begin: Callable[[], None], end: Callable[[], None],
                   while_rerunning: Callable[[LongFaultRun], None] | None = None) -> LongFaultRun:
    client = c.client()
    ledger = Ledger(work / "ledger.txt")
    sink = work / "sink.json"
    argv = ledger_task(ledger.path, ITERATIONS, sink, c.cluster_addresses)
    ids = [submit_ledger_job(client, argv, name=f"ledger-{i}") for i in range(JOBS)]

    def all_running() -> list[jobs_pb2.Job] | None:
        jobs = [client.get_job(j) for j in ids]
        lines = ledger.read()
        ok = all(j.state == jobs_pb2.JOB_STATE_RUNNING and lines.get(j.id, {}).get(1) is not None
                 and lines[j.id][1].lines >= 3 for j in jobs)
        return jobs if ok else None

    running = wait_for(all_running, 60, f"{JOBS} ledger jobs RUNNING and writing")
    victims = [j.id for j in running if j.attempts[-1].executor == "e1"]
    others = [j.id for j in running if j.id not in victims]
    assert victims, f"no job landed on e1: {[(j.id, j.attempts[-1].executor) for j in running]}"

    t_fault = time.time_ns()
    begin()
    run = LongFaultRun(t_fault, victims, others, {}, {}, 0, sink)
    try:
        run.leader_lease_end_ns = _leader_lease_end(client, t_fault)
        wait_for(lambda: all(ledger.has_attempt(v, 2) for v in victims), 60,
                 f"a second attempt of each of {victims} writing the ledger")
        if while_rerunning is not None:
            while_rerunning(run)
    finally:
        end()

    def all_done() -> dict[str, jobs_pb2.Job] | None:
        jobs = {j: client.get_job(j) for j in ids}
        return jobs if all(job.state in TERMINAL for job in jobs.values()) else None

    run.jobs = wait_for(all_done, 120, "every ledger job ended", 0.25)
    run.ledger = ledger.read()
    return run


def _leader_lease_end_sample(client, eid: str) -> int:
    sent = time.time_ns()
    views = {e.id: e for e in client.list_executors(timeout=5).executors}
    view = views.get(eid)
    if view is None or view.lease_remaining_ms <= 0:
        return 0
    return sent + view.lease_remaining_ms * 1_000_000


def _leader_lease_end(client, t_fault_ns: int) -> int:
    """When e1's lease ends on the leader's side, as a lower bound: sampled (send time + remaining)
    until 2 s after the fault began, by when any heartbeat that passed before it has arrived. The
    latest sample wins (a heartbeat received after an earlier sample moved the lease on)."""
    best = 0
    while time.time_ns() < t_fault_ns + 2_000_000_000:
        with contextlib.suppress(ClientError):
            best = max(best, _leader_lease_end_sample(client, "e1"))
        time.sleep(0.1)
    return best

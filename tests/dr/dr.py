"""Helpers for the disaster-recovery tests (issue 5), on top of `tests/integration/cluster.py`:
clusters with small snapshot thresholds, a bounded background writer that records every
acknowledged job, bulk loading, per-node stale job listings, and adding a node by `--join`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from integration.cluster import Cluster, wait_for

from raftsched.client import Client, ClientError
from raftsched.testing.procs import free_port_range
from raftsched.v1 import jobs_pb2

# Compact often and keep a short tail, so that a node down for a few thousand entries can only
# come back through InstallSnapshot.
SNAPSHOT_FLAGS = ("--snapshot-entries", "200", "--snapshot-keep-tail", "50")
RETRYABLE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")


def submit_keyed(client: Client, key: str, payload: bytes = b"", deadline_s: float = 60.0) -> jobs_pb2.Job:
    """Submit a noop job with idempotency key `key`, retrying what is safe to retry (the key makes a
    repeat of an outcome-unknown call harmless); returns the acknowledged job."""
    deadline = time.monotonic() + deadline_s
    spec = jobs_pb2.JobSpec(handler="noop", idempotency_key=key, payload=payload)
    while True:
        try:
            return client.submit_job(spec, timeout=10).job
        except ClientError as err:
            if err.code not in RETRYABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def load(
    c: Cluster, count: int, prefix: str, *, threads: int = 16, payload: bytes = b"", among: tuple[str, ...] = ()
) -> dict[str, str]:
    """Submit `count` keyed jobs from `threads` threads (one Raft entry each); key -> job id."""
    acked: dict[str, str] = {}
    lock = threading.Lock()
    local = threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = c.client(*among, timeout=10)
        key = f"{prefix}-{i:06d}"
        job = submit_keyed(local.client, key, payload)
        with lock:
            acked[key] = job.id

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(one, i) for i in range(count)]:
            future.result()
    return acked


@dataclass
class Writer:
    """A client writing keyed jobs in the background until stopped (at most `limit` of them),
    recording each acknowledged one. Failures other than retryable ones are kept for the test."""

    cluster: Cluster
    prefix: str
    limit: int = 5000
    among: tuple[str, ...] = ()
    acked: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Writer:
        client = self.cluster.client(*self.among, timeout=10)
        self._thread = threading.Thread(target=self._run, args=(client,), name=f"writer-{self.prefix}", daemon=True)
        self._thread.start()
        return self

    def _run(self, client: Client) -> None:
        for i in range(self.limit):
            if self._stop.is_set():
                return
            key = f"{self.prefix}-{i:06d}"
            try:
                self.acked[key] = submit_keyed(client, key, deadline_s=30).id
            except ClientError as err:
                self.errors.append(f"{key}: {err.code} {err}")
                return

    def wait_count(self, count: int, timeout: float = 30.0) -> None:
        wait_for(lambda: len(self.acked) >= count or self.errors, timeout, f"{count} writes by {self.prefix}")
        assert not self.errors, self.errors

    def stop(self) -> dict[str, str]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            assert not self._thread.is_alive(), "the writer did not stop within 60 s"
        assert not self.errors, f"the writer failed: {self.errors}"
        return dict(self.acked)


def jobs_on(c: Cluster, nid: str, page_size: int = 1000) -> dict[str, jobs_pb2.Job]:
    """Every job node `nid` holds, read from that node alone (ListJobs stale=true). Pages are
    bounded by count only: jobs with large payloads need a small `page_size`."""
    client = c.client(nid, timeout=30)
    return {job.id: job for job in client.iter_jobs(page_size=page_size, stale=True)}


def comparable(jobs: dict[str, jobs_pb2.Job]) -> dict[str, bytes]:
    return {job_id: job.SerializeToString(deterministic=True) for job_id, job in jobs.items()}


def assert_acked_present(jobs: dict[str, jobs_pb2.Job], acked: dict[str, str], where: str) -> None:
    missing = sorted(key for key, job_id in acked.items() if job_id not in jobs)
    assert not missing, f"{len(missing)} acknowledged jobs missing on {where}, e.g. {missing[:5]}"


def add_node_id(c: Cluster, nid: str) -> str:
    """Give the cluster one more node id with a free port (not started); returns its address."""
    (port,) = free_port_range(1)
    c.addr[nid] = f"127.0.0.1:{port}"
    c.ids.append(nid)
    c._per_node = {}  # status clients are made for the ids known at first use
    return c.addr[nid]


def start_joining(c: Cluster, nid: str, join: str, data_dir: Path | None = None) -> None:
    """Start node `nid` with `--join` (a fresh data directory unless given)."""
    args = [
        "node",
        "--id",
        nid,
        "--listen",
        c.addr[nid],
        "--data-dir",
        str(data_dir or c.data_dir(nid)),
        "--join",
        join,
        *c.timing,
        *c.node_flags,
    ]
    c.nodes[nid] = c._spawn(nid, args)


def applied(c: Cluster, nid: str) -> int:
    return c.local_status(nid).applied_index


def log_text(c: Cluster, nid: str) -> str:
    return c.nodes[nid].log.read_text(errors="replace")


def wait_log(c: Cluster, nid: str, needle: str, timeout: float) -> None:
    wait_for(lambda: needle in log_text(c, nid), timeout, f"{nid}'s log says {needle!r}")


def wait_converged(c: Cluster, nids: list[str], timeout: float = 60.0) -> None:
    """Wait until every node in `nids` applied what the leader had committed when asked."""
    for nid in nids:
        c.wait_caught_up(nid, timeout)

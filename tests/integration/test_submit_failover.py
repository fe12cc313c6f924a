"""Submissions across a leader kill: nothing acknowledged is lost, nothing is created twice
(SPEC §6 promises 1 and 2)."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from raftsched.client import ClientError
from raftsched.jobstates import TERMINAL
from raftsched.v1 import jobs_pb2

from .cluster import Cluster, WaitTimeout, state_name, wait_for

pytestmark = pytest.mark.integration

SUBMITS = 300
THREADS = 8
KEYS = [f"stream-{i:04d}" for i in range(SUBMITS)]
RETRY_WINDOW_S = 60  # a key is retried (same key) for this long before the test gives up on it


def _submit_until_acked(client, key: str) -> jobs_pb2.Job:
    """Submit with idempotency key `key`, retrying what the cluster says is safe to retry."""
    deadline = time.monotonic() + RETRY_WINDOW_S
    while True:
        try:
            return client.submit_job(jobs_pb2.JobSpec(handler="noop", idempotency_key=key), timeout=10).job
        except ClientError as e:
            # UNAVAILABLE: not applied; DEADLINE_EXCEEDED: unknown, and the key makes a repeat safe.
            if e.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED") or time.monotonic() > deadline:
                raise


@dataclass
class Stream:
    """The outcome of one run of the scenario: the cluster, every key's acknowledged id."""

    cluster: Cluster
    old_leader: str
    acked: dict[str, str]


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Iterator[Stream]:
    """3 nodes + 2 executors; 300 keyed noop submits from 8 threads; SIGKILL the leader after a third."""
    c = Cluster(tmp_path_factory.mktemp("stream"))
    try:
        c.start_all()
        old = c.wait_leader(30)
        c.start_executor("e1")
        c.start_executor("e2")
        c.wait_executors("e1", "e2")
        acked: dict[str, str] = {}
        lock = threading.Lock()
        local = threading.local()

        def submit(key: str) -> None:
            if not hasattr(local, "client"):
                local.client = c.client(timeout=10)
            job = _submit_until_acked(local.client, key)
            with lock:
                acked[key] = job.id

        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(submit, k) for k in KEYS]
            wait_for(lambda: len(acked) >= SUBMITS // 3, 60, f"{SUBMITS // 3} acknowledged submits")
            c.kill(old)
            for f in futures:
                f.result()
        yield Stream(c, old, acked)
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()


def test_leader_killed_during_a_stream_of_submissions_loses_and_duplicates_nothing(stream):
    c = stream.cluster
    assert len(stream.acked) == SUBMITS
    new = c.wait_leader(among=[n for n in c.ids if n != stream.old_leader])
    assert new != stream.old_leader
    jobs = list(c.client().iter_jobs(page_size=1000))
    by_key = collections.defaultdict(list)
    for job in jobs:
        by_key[job.spec.idempotency_key].append(job.id)
    dupes = {k: v for k, v in by_key.items() if len(v) > 1}
    assert not dupes, f"idempotency keys with more than one job: {dupes}"
    assert set(by_key) == set(KEYS)
    for key, jid in stream.acked.items():
        assert by_key[key] == [jid], f"{key}: acknowledged as {jid}, the cluster holds {by_key[key]}"


# Regression: before 214af4b an attempt whose Assign message died with the old leader (appended,
# then committed by the new one, never pushed) stayed ASSIGNED forever on a connected executor.
# A race: this scenario hit it in about two runs out of three; test_executor_loss reproduces the
# same missing reconciliation deterministically.
def test_every_job_acknowledged_across_a_leader_kill_finishes(stream):
    c = stream.cluster
    client = c.client()

    def done():
        jobs = list(client.iter_jobs(page_size=1000))
        return jobs if all(j.state in TERMINAL for j in jobs) else None

    try:
        final = wait_for(done, 30, f"all {SUBMITS} jobs terminal", 0.5)
    except WaitTimeout:
        stuck = [j for j in client.iter_jobs(page_size=1000) if j.state not in TERMINAL]
        executors = {e.id: [f"{r.job_id}/{r.attempt}" for r in e.running]
                     for e in client.list_executors().executors}
        raise AssertionError(
            f"{len(stuck)} jobs never finished: "
            + ", ".join(f"{j.id} {state_name(j)} on {j.attempts[-1].executor if j.attempts else '-'}"
                        for j in stuck[:10])
            + f"; executors (leader's view of running attempts): {executors}") from None
    states = collections.Counter(state_name(j) for j in final)
    assert states == {"SUCCEEDED": SUBMITS}, states


def test_same_idempotency_key_before_and_after_a_leader_change_gives_one_job(make_cluster):
    c = make_cluster()
    old = c.wait_leader()
    client = c.client(timeout=30)
    first = client.submit_job(jobs_pb2.JobSpec(handler="noop", idempotency_key="idem-across-failover"))
    assert not first.existed
    c.kill(old)
    # At once, while there is no leader: the client retries until the new leader answers.
    again = client.submit_job(jobs_pb2.JobSpec(handler="noop", idempotency_key="idem-across-failover"))
    assert again.job.id == first.job.id
    assert again.existed
    new = c.wait_leader(among=[n for n in c.ids if n != old])
    assert new != old
    # And once more through each survivor, after the election settled.
    for nid in c.live():
        third = c.client(nid).submit_job(jobs_pb2.JobSpec(handler="noop", idempotency_key="idem-across-failover"))
        assert third.job.id == first.job.id and third.existed
    jobs = list(client.iter_jobs())
    assert [j.id for j in jobs if j.spec.idempotency_key == "idem-across-failover"] == [first.job.id]

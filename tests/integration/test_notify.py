"""Promise 13 against real processes: signed webhooks from a 3-node cluster to a receiver on
127.0.0.1. One cluster runs the three scenarios of issue 16 in a row (to spend the 30 s outage
once): a job that always fails gives exactly one job.failed id with a valid signature; then the
receiver goes down for 30 s, failing jobs and a test event pile up, the leader is killed while
they are pending, and when the receiver is back every event arrives, repeats with the same id."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from raftsched.testing.procs import free_port_range
from raftsched.v1 import jobs_pb2

from .cluster import Cluster, run_cli, wait_for
from .hooks import Receiver
from .test_operations import scrape

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECRET = b"integration-secret-1"
DOWN_S = 30.0  # the outage
NODE_FLAGS = ("--notify-retry-initial", "200ms", "--notify-retry-max", "2s", "--cluster-name", "itest")


def sinks(c: Cluster) -> list[dict[str, object]]:
    r = run_cli("notify", "list", "--json", cluster=c.cluster)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def failing_job(c: Cluster) -> str:
    return c.submit(handler="fail", max_attempts=2, backoff=jobs_pb2.RetryBackoff(initial_ms=100)).id


def test_webhooks_arrive_once_per_event_across_a_leader_kill_and_a_30_s_outage(tmp_path: Path) -> None:
    receiver = Receiver(free_port_range(1)[0], SECRET)
    receiver.up()
    secret_file = tmp_path / "hook.secret"
    secret_file.write_bytes(SECRET + b"\n")  # as `echo SECRET > FILE` writes it
    c = Cluster(tmp_path / "cluster")
    metrics = dict(zip(c.ids, free_port_range(3), strict=True))
    try:
        for nid, port in metrics.items():
            c.node_flags = (*NODE_FLAGS, "--metrics-listen", f"127.0.0.1:{port}")
            c.start(nid)
        c.wait_leader(30)
        c.start_executor("e1", 4)
        c.wait_executors("e1")
        _bad_sinks_are_refused(c, secret_file)
        r = run_cli("notify", "add", "hook", "--url", receiver.url, "--secret-file", str(secret_file),
                    cluster=c.cluster)
        assert r.returncode == 0, r.stderr

        # 1. a job that always fails: exactly one job.failed id, signed
        first = failing_job(c)
        wait_for(lambda: receiver.failed_ids(first), 20, "job.failed of the first job")

        # 2. the receiver goes down; events pile up; the leader dies while they are pending
        receiver.down()
        down_at = time.monotonic()
        jobs = [failing_job(c) for _ in range(4)]
        for job_id in jobs:
            c.wait_state(job_id, jobs_pb2.JOB_STATE_FAILED, timeout=20)
        test = run_cli("notify", "test", "hook", "--json", cluster=c.cluster)
        assert test.returncode == 0, test.stderr
        test_id = json.loads(test.stdout)["eventId"]
        wait_for(lambda: int(str(sinks(c)[0]["failedAttempts"])) > 0, 10, "failed attempts while down", 0.3)
        old = c.leader()
        assert old is not None
        c.kill(old)
        new = c.wait_leader(30, among=[n for n in c.ids if n != old])
        shown = wait_for(lambda: _if_pending(sinks(c)[0], 6), 10, "pending events shown", 0.3)
        assert shown["lastError"] and shown["hasSecret"] and shown.get("secret") in ("", None)
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))

        # 3. the receiver is back: everything arrives, repeats carry the same id
        receiver.up()
        wanted = [*jobs, first]
        wait_for(lambda: all(receiver.failed_ids(j) for j in wanted), 20, "every job.failed after the outage")
        wait_for(lambda: test_id in {i for i, _, _ in receiver.events()}, 10, "the test event")
        wait_for(lambda: any(body["type"] == "leader.changed" and body["data"]["leader"] == new  # type: ignore[index]
                             for _, body, _ in receiver.events()), 10, "leader.changed of the new leader")
        final = wait_for(lambda: _if_pending(sinks(c)[0], 0, exact=True), 10, "an empty outbox", 0.3)
        _check_deliveries(receiver, wanted, final)
        _check_metrics(scrape(metrics[new]), final)
    finally:
        receiver.down()
        c.close()


def _bad_sinks_are_refused(c: Cluster, secret_file: Path) -> None:
    bad_url = run_cli("notify", "add", "x", "--url", "ftp://127.0.0.1/x", cluster=c.cluster)
    assert bad_url.returncode == 2 and "--url" in bad_url.stderr and "Traceback" not in bad_url.stderr
    bad_event = run_cli("notify", "add", "x", "--url", "http://127.0.0.1:1/", "--events", "job.exploded",
                        cluster=c.cluster)
    assert bad_event.returncode == 2 and "job.exploded" in bad_event.stderr
    bad_name = run_cli("notify", "add", "bad/name", "--url", "http://127.0.0.1:1/", cluster=c.cluster)
    assert bad_name.returncode == 1 and "INVALID_ARGUMENT" in bad_name.stderr and "name:" in bad_name.stderr
    missing = run_cli("notify", "remove", "nope", cluster=c.cluster)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert sinks(c) == []


def _if_pending(sink: dict[str, object], count: int, exact: bool = False) -> dict[str, object] | None:
    pending = int(str(sink.get("pending", 0)))
    return sink if (pending == count if exact else pending >= count) else None


def _check_deliveries(receiver: Receiver, jobs: list[str], sink: dict[str, object]) -> None:
    events = receiver.events()
    assert all(good for _, _, good in events), "a delivery with a wrong signature"
    bodies: dict[str, dict[str, object]] = {}
    for event_id, body, _ in events:
        assert body["id"] == event_id and body["cluster"] == "itest"
        assert bodies.setdefault(event_id, body) == body, f"{event_id} repeated with another body"
    for job_id in jobs:
        assert len(receiver.failed_ids(job_id)) == 1, f"{job_id}: {receiver.failed_ids(job_id)}"
    assert int(str(sink["delivered"])) == len(bodies)
    assert int(str(sink["failedAttempts"])) > 0


def _check_metrics(m: dict[str, float], sink: dict[str, object]) -> None:
    assert m['raftsched_notify_events_total{type="job.failed"}'] == 5
    assert m['raftsched_notify_events_total{type="test"}'] == 1
    assert m['raftsched_notify_events_total{type="leader.changed"}'] >= 2
    assert m['raftsched_notify_deliveries_total{result="delivered"}'] == int(str(sink["delivered"]))
    assert m['raftsched_notify_deliveries_total{result="failed"}'] == int(str(sink["failedAttempts"]))
    assert m['raftsched_notify_queue_depth{sink="hook"}'] == 0

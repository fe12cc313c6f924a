"""Job semantics on a running cluster with two executors: dependencies, cancel, per-attempt
timeouts and WatchJob (SPEC §5). These tests share one cluster and break nothing in it."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from raftsched.jobstates import TERMINAL
from raftsched.v1 import jobs_pb2

from .cluster import run_cli, state_name, wait_for

pytestmark = pytest.mark.integration
J = jobs_pb2


def test_dependency_chain_runs_in_order(jobs_cluster):
    c = jobs_cluster
    client = c.client()
    a = c.submit(client, handler="sleep", payload=b"300", name="a")
    b = c.submit(client, handler="noop", name="b", depends_on=[a.id])
    cc = c.submit(client, handler="noop", name="c", depends_on=[b.id])
    assert b.state == J.JOB_STATE_PENDING and cc.state == J.JOB_STATE_PENDING
    done = {j.id: c.wait_state(j.id, TERMINAL, 30, client) for j in (a, b, cc)}
    assert [state_name(done[j.id]) for j in (a, b, cc)] == ["SUCCEEDED"] * 3
    for before, after in ((a, b), (b, cc)):
        prev, nxt = done[before.id], done[after.id]
        assert len(nxt.attempts) == 1
        # Leader-stamped times: the dependent was not even assigned before its dependency finished.
        assert nxt.attempts[0].assigned_ms >= prev.attempts[-1].finished_ms, (prev, nxt)
        assert nxt.attempts[0].started_ms >= prev.attempts[-1].finished_ms


def test_failed_dependency_skips_its_dependents_with_a_reason(jobs_cluster):
    c = jobs_cluster
    client = c.client()
    bad = c.submit(client, handler="fail", payload=b"boom", max_attempts=1, name="bad")
    child = c.submit(client, handler="noop", depends_on=[bad.id], name="child")
    grandchild = c.submit(client, handler="noop", depends_on=[child.id], name="grandchild")
    bad = c.wait_state(bad.id, TERMINAL, 30, client)
    assert state_name(bad) == "FAILED"
    assert [J.AttemptEnd.Name(a.end) for a in bad.attempts] == ["ATTEMPT_END_FAILED"]
    assert "boom" in bad.attempts[0].error
    child = c.wait_state(child.id, TERMINAL, 10, client)
    grandchild = c.wait_state(grandchild.id, TERMINAL, 10, client)
    assert state_name(child) == "SKIPPED" and not child.attempts
    assert bad.id in child.state_reason, child.state_reason
    assert state_name(grandchild) == "SKIPPED" and not grandchild.attempts
    assert grandchild.state_reason, "a SKIPPED job says why"


def _process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_cancel_kills_the_running_subprocess(jobs_cluster, tmp_path):
    c = jobs_cluster
    client = c.client()
    pidfile = tmp_path / "task.pid"
    job = c.submit(client, command=["sh", "-c", f"echo $$ > {pidfile}; sleep 60"], name="to-cancel")
    c.wait_state(job.id, J.JOB_STATE_RUNNING, 30, client)
    text = wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "the task wrote its pid")
    pid = int(text)
    c.track_pgid(pid)  # the task leads its own process group; killed at teardown if the test fails
    assert _process_alive(pid)

    cancelled = client.cancel_job(job.id, "integration test")
    assert cancelled.state == J.JOB_STATE_CANCELLED
    assert state_name(client.get_job(job.id)) == "CANCELLED"
    wait_for(lambda: not _process_alive(pid), 5, f"task process {pid} gone after cancel")
    wait_for(lambda: not _group_alive(pid), 5, f"task process group {pid} (the sleep) gone after cancel")
    final = client.get_job(job.id)
    assert state_name(final) == "CANCELLED"
    assert [J.AttemptEnd.Name(a.end) for a in final.attempts] == ["ATTEMPT_END_CANCELLED"]


def test_per_attempt_timeout_fails_the_job_after_max_attempts(jobs_cluster):
    c = jobs_cluster
    r = run_cli("job", "submit", "--json", "--handler", "sleep", "--payload", "5000", "--timeout", "1s",
                "--max-attempts", "2", "--backoff-initial", "100ms", cluster=c.cluster)
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout)["id"]
    job = c.wait_state(job_id, TERMINAL, 30)
    assert state_name(job) == "FAILED"
    assert job.spec.timeout_ms == 1000
    assert [J.AttemptEnd.Name(a.end) for a in job.attempts] == ["ATTEMPT_END_TIMED_OUT"] * 2
    assert [a.number for a in job.attempts] == [1, 2]
    for attempt in job.attempts:
        assert "timed out" in attempt.error, attempt.error
        # Ended by the timeout, well before the 5 s sleep could finish on its own. The executor
        # times the attempt from its own start, which the leader stamps (started_ms) a little
        # later; assigned_ms precedes that start, so it is the reference that bounds from below.
        ran = attempt.finished_ms - attempt.assigned_ms
        assert 1000 <= ran < 5000, ran


def test_watch_streams_current_state_first_then_each_change_to_succeeded(jobs_cluster):
    c = jobs_cluster
    client = c.client()
    # A label only a later executor has keeps the job QUEUED until the watch is open.
    job = c.submit(client, handler="sleep", payload=b"300", labels={"pool": "watch"})
    assert job.state == J.JOB_STATE_QUEUED
    seen: list[int] = []
    opened = threading.Event()
    errors: list[BaseException] = []

    def watch():
        try:
            for update in c.client().watch_job(job.id, timeout=60):
                seen.append(update.state)
                opened.set()
        except BaseException as e:  # shown by the assertion below
            errors.append(e)
            opened.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert opened.wait(15), "the watch sent nothing"
    c.start_executor("e-watch", 1, "--label", "pool=watch")
    thread.join(60)
    assert not thread.is_alive(), f"the watch did not end; saw {[J.JobState.Name(s) for s in seen]}"
    assert not errors, errors
    names = [J.JobState.Name(s).removeprefix("JOB_STATE_") for s in seen]
    assert names[0] == "QUEUED", names
    assert names[-1] == "SUCCEEDED", names
    order = ["QUEUED", "ASSIGNED", "RUNNING", "SUCCEEDED"]
    assert all(n in order for n in names), names
    assert [order.index(n) for n in names] == sorted(order.index(n) for n in names), f"went backwards: {names}"
    assert "RUNNING" in names, names


def test_a_flood_of_short_jobs_never_overfills_an_executor(make_cluster):
    """Dispatch is pipelined (batches assigned while earlier ones commit, slots of reported results
    refilled before those commit): an executor must still never be sent more than its slots, which
    it would refuse as "no free slots" (a failed attempt). Two guards keep that promise: the
    dispatcher's own accounting and, at apply, the state machine's slot check."""
    c = make_cluster(executors=2, slots=2)
    client = c.client()
    # Short sleeps, so slots stay taken a while: an extra assignment would find them all busy.
    specs = [jobs_pb2.JobSpec(handler="sleep", payload=b"20", max_attempts=1, name=f"flood-{i}") for i in range(400)]
    ids = [r.job.id for chunk in range(0, len(specs), 100)
           for r in client.submit_jobs(specs[chunk:chunk + 100]).results]
    assert len(ids) == 400

    def all_done() -> list[jobs_pb2.Job] | None:
        jobs = [j for state in TERMINAL for j in _all_in(client, state)]
        return jobs if len(jobs) == len(ids) else None

    done = wait_for(all_done, 120, "400 short jobs ended", 0.25)
    refused = [(j.id, a.error) for j in done for a in j.attempts if a.error]
    assert not refused, refused[:5]
    assert {state_name(j) for j in done} == {"SUCCEEDED"}
    assert all(len(j.attempts) == 1 for j in done)
    assert {j.attempts[0].executor for j in done} == {"e1", "e2"}


def _all_in(client, state: int) -> list[jobs_pb2.Job]:
    jobs, token = [], ""
    while True:
        page = client.list_jobs(state, page_size=1000, page_token=token)
        jobs.extend(page.jobs)
        token = page.next_page_token
        if not token:
            return jobs


def test_a_noop_is_recorded_started_and_finished_in_one_entry(jobs_cluster):
    """Every member of a cluster of this version reports raftsched.features on its append replies,
    so the leader writes a start inside its result's entry (a task that ends at once: the executor
    holds the start up to 2 ms for the result). Of 20 noops, at least one shows it."""
    from google.protobuf.message import DecodeError

    from raftsched.state.commands import decode

    client = jobs_cluster.client()
    ids = [r.job.id for r in client.submit_jobs([jobs_pb2.JobSpec(handler="noop") for _ in range(20)]).results]
    for job_id in ids:
        jobs_cluster.wait_state(job_id, jobs_pb2.JOB_STATE_SUCCEEDED, 30, client)
    leader = jobs_cluster.client(jobs_cluster.wait_leader())
    start = leader.read_log(0, 1).first_index
    together = set()
    while True:
        page = leader.read_log(start, 1000)
        for entry in page.entries:
            try:
                cmd = decode(entry.data)
            except DecodeError:  # a configuration entry
                continue
            if cmd.WhichOneof("body") == "finished":
                ended = {item.job_id for item in cmd.finished.items}
                together |= {ref.job_id for ref in cmd.finished.started if ref.job_id in ended}
        if not page.entries or page.entries[-1].index >= page.commit_index:
            break
        start = page.entries[-1].index + 1
    assert together & set(ids), "no noop was recorded started and finished in one entry"


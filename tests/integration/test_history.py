"""History kept, not hoarded (SPEC §5, §6 promise 12, §7), against real processes: finished jobs go
after --job-retention, a key is forgotten after --idempotency-window, schedule history limits hold,
and a node of this version starts on a data directory and restores a backup that the previous
version (state format 1, tests/fixtures) wrote."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from raftsched.client import ClientError
from raftsched.testing.procs import free_port
from raftsched.v1 import jobs_pb2, scheduler_pb2

from .cluster import FAST, Cluster, run_cli, wait_for

J = jobs_pb2
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
pytestmark = pytest.mark.integration


@pytest.fixture
def short_history(tmp_path: Path):
    c = Cluster(tmp_path / "h", timing=FAST, node_flags=("--job-retention", "3s", "--idempotency-window", "4s"))
    try:
        c.start_all()
        c.wait_leader(30)
        c.start_executor("e1", 4)
        c.wait_executors("e1")
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()

# The fixtures' records carry the times they were made. With the default retention (7 d) and
# idempotency window (24 h) a node would purge them as the fixtures age, so keep everything.
KEEP_HISTORY = ("--job-retention", "0", "--idempotency-window", "0")

def counts(c: Cluster) -> dict[str, int]:
    status = c.local_status(c.wait_leader())
    return dict(status.job_counts)


def test_finished_jobs_go_after_the_retention_and_keys_after_their_window(short_history: Cluster) -> None:
    c = short_history
    client = c.client(timeout=20)
    done = [c.submit(client, handler="noop", idempotency_key=f"once-{i}") for i in range(20)]
    live = c.submit(client, handler="sleep", payload=b"60000", idempotency_key="long")
    for job in done:
        c.wait_state(job.id, J.JOB_STATE_SUCCEEDED)
    assert counts(c)["SUCCEEDED"] == 20
    # Within one purge round of aging (3 s retention, 1 s rounds), with some slack for a busy machine.
    wait_for(lambda: counts(c)["SUCCEEDED"] == 0, 20, "finished jobs purged after 3 s")
    with pytest.raises(ClientError) as info:
        client.get_job(done[0].id)
    assert info.value.code == "NOT_FOUND"
    # The running job stays (it is live), and so does its key until its 4 s window ends ...
    assert client.get_job(live.id).state in (J.JOB_STATE_ASSIGNED, J.JOB_STATE_RUNNING)
    again = client.submit_job(J.JobSpec(handler="noop", idempotency_key="once-0"))
    assert not again.existed and again.job.id != done[0].id  # its job is gone: the key with it

    def forgotten() -> bool:
        resubmitted = client.submit_job(J.JobSpec(handler="sleep", payload=b"1", idempotency_key="long"))
        return not resubmitted.existed

    wait_for(forgotten, 20, "the live job's key forgotten after its 4 s window")
    assert client.get_job(live.id).state in (J.JOB_STATE_ASSIGNED, J.JOB_STATE_RUNNING)
    for nid in c.ids:  # every replica agrees on the counts (purges are replicated commands)
        wait_for(lambda nid=nid: c.local_status(nid).job_counts == c.local_status(c.wait_leader()).job_counts,
                 10, f"{nid} has the leader's counts")


def test_a_schedule_keeps_only_its_last_jobs(short_history: Cluster) -> None:
    c = short_history
    out = run_cli("schedule", "create", "often", "--every", "1s", "--handler", "noop", "--keep-succeeded", "2",
                  cluster=c.cluster)
    assert out.returncode == 0, out.stderr
    client = c.client(timeout=20)

    def made() -> list[jobs_pb2.Job]:
        return list(client.iter_jobs(schedule="often"))

    wait_for(lambda: client.get_schedule("often").fired_count >= 6, 30, "six fires")
    wait_for(lambda: sum(j.state == J.JOB_STATE_SUCCEEDED for j in made()) <= 2, 10, "at most 2 succeeded kept")
    kept = [j for j in made() if j.state == J.JOB_STATE_SUCCEEDED]
    assert kept and all(j.scheduled_time >= kept[0].scheduled_time for j in kept)
    detail = run_cli("schedule", "get", "often", cluster=c.cluster)
    assert "keeps the last 2 succeeded" in detail.stdout


def test_a_node_starts_on_a_data_directory_of_the_previous_version(tmp_path: Path) -> None:
    with tarfile.open(FIXTURES / "v1-node.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    c = Cluster(tmp_path / "c", size=1, timing=FAST, node_flags=KEEP_HISTORY)
    (tmp_path / "n1").rename(c.data_dir("n1"))
    try:
        c.start_all()
        c.wait_leader(30)
        client = c.client(timeout=20)
        assert client.get_job("j1").state == J.JOB_STATE_SUCCEEDED
        assert client.get_job("j8").state == J.JOB_STATE_SKIPPED
        assert client.submit_job(J.JobSpec(handler="noop", idempotency_key="key-2")).job.id == "j3"
        status = c.local_status("n1")
        assert dict(status.job_counts) == {"PENDING": 0, "QUEUED": 3, "ASSIGNED": 0, "RUNNING": 0,
                                          "SUCCEEDED": 7, "FAILED": 1, "CANCELLED": 1, "SKIPPED": 1}
        assert "migrated the state machine to format 2" in c.nodes["n1"].log.read_text()
        new = c.submit(client, handler="noop")
        assert new.id == "j14"
        c.restart("n1")  # once only: the second start finds format 2
        c.wait_leader(30)
        assert c.nodes["n1"].log.read_text().count("migrated the state machine") == 1
        assert c.client(timeout=20).get_job(new.id).state == J.JOB_STATE_QUEUED
    finally:
        c.close()


def test_a_backup_of_the_previous_version_restores(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "r", size=1, timing=FAST, node_flags=KEEP_HISTORY)
    out = run_cli("snapshot", "restore", str(FIXTURES / "v1-backup.rsbak"), "--data-dir", str(c.data_dir("n1")),
                  "--id", "n1", "--peers", c.peers, cluster=c.cluster)
    assert out.returncode == 0, out.stderr
    try:
        c.start_all()
        c.wait_leader(30)
        client = c.client(timeout=20)
        assert client.get_job("j6").state == J.JOB_STATE_FAILED
        assert [j.id for j in client.iter_jobs(state=J.JOB_STATE_QUEUED)] == ["j11", "j12", "j13"]
        schedule = client.get_schedule("tick")
        assert schedule.paused and schedule.last_skipped_time == max(s.scheduled_time for s in schedule.skipped)
        assert isinstance(schedule, scheduler_pb2.Schedule)
    finally:
        c.close()


def test_a_backup_of_an_unknown_format_is_refused_naming_both_versions(tmp_path: Path) -> None:
    blob = bytearray((FIXTURES / "v1-backup.rsbak").read_bytes())
    blob[8:10] = (7).to_bytes(2, "big")  # the format field of a format-1 header
    bad = tmp_path / "future.rsbak"
    bad.write_bytes(bytes(blob))
    target = tmp_path / "data"
    out = run_cli("snapshot", "restore", str(bad), "--data-dir", str(target), "--id", "n1",
                  "--peers", f"n1=127.0.0.1:{free_port()}", cluster="127.0.0.1:1")
    assert out.returncode != 0
    assert "version 7" in out.stderr and "1 and 2" in out.stderr
    assert not target.exists() or not any(target.iterdir())

"""The client-facing surface: validation errors that change nothing, the CLI's output contract,
forwarding from followers and stale reads (SPEC §3, §4, §6.8)."""

from __future__ import annotations

import json

import grpc
import pytest

from raftsched.client import ClientError
from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

from .cluster import run_cli, wait_for

pytestmark = pytest.mark.integration
J = jobs_pb2

BAD_SPECS = [  # (what, spec fields, the field the error must name)
    ("neither command nor handler", {}, "handler"),
    ("both command and handler", {"handler": "noop", "command": ["true"]}, "handler"),
    ("payload over 1 MiB", {"handler": "echo", "payload": b"x" * ((1 << 20) + 1)}, "payload"),
    ("max_attempts over 100", {"handler": "noop", "max_attempts": 101}, "max_attempts"),
    ("unknown handler", {"handler": "no-such-handler"}, "handler"),
    ("unknown depends_on", {"handler": "noop", "depends_on": ["j999999999"]}, "depends_on"),
    ("malformed depends_on", {"handler": "noop", "depends_on": ["not-a-job"]}, "depends_on"),
    ("malformed label", {"handler": "noop", "labels": {"bad key!": "v"}}, "labels"),
    ("priority out of range", {"handler": "noop", "priority": 5000}, "priority"),
    ("slots out of range", {"handler": "noop", "slots": 65}, "slots"),
    ("backoff multiplier below 1", {"handler": "noop", "backoff": J.RetryBackoff(multiplier=0.5)},
     "backoff.multiplier"),
    ("empty argv element", {"command": ["sh", ""]}, "command"),
]


def _log_position(c):
    leader = c.wait_leader()
    s = c.local_status(leader)
    return leader, s.last_log_index, s.commit_index


def test_bad_submits_get_invalid_argument_naming_the_field_and_leave_the_log_unchanged(quiet_cluster):
    c = quiet_cluster
    leader, last_before, commit_before = _log_position(c)
    jobs_before = [j.id for j in c.client().iter_jobs()]
    follower = next(n for n in c.ids if n != leader)
    for via in (c.client(leader), c.client(follower)):  # at the leader, and forwarded by a follower
        for what, fields, field in BAD_SPECS:
            with pytest.raises(ClientError) as err:
                via.submit_job(J.JobSpec(**fields))
            assert err.value.code == "INVALID_ARGUMENT", (what, err.value)
            assert err.value.message.startswith(field), (what, err.value.message)
        # A batch of only bad specs: one error each, nothing proposed.
        response = via.submit_jobs([J.JobSpec(**fields) for _, fields, _ in BAD_SPECS])
        assert len(response.results) == len(BAD_SPECS)
        for (what, _, field), result in zip(BAD_SPECS, response.results, strict=True):
            assert result.error.startswith(field), (what, result.error)
            assert result.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], (what, result.code)
            assert not result.job.id
    assert _log_position(c) == (leader, last_before, commit_before), "a bad request wrote to the log"
    assert [j.id for j in c.client().iter_jobs()] == jobs_before


def test_cli_status_json_prints_one_object_with_every_node(quiet_cluster):
    c = quiet_cluster
    c.wait_leader()
    r = run_cli("status", "--json", cluster=c.cluster)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, r.stdout
    status = json.loads(lines[0])
    nodes = status["nodes"]
    assert sorted(n["id"] for n in nodes) == c.ids
    for n in nodes:
        for key in ("id", "address", "role", "term", "leader", "commitIndex", "appliedIndex", "healthy"):
            assert key in n, (key, n)
        assert n["address"] == c.addr[n["id"]]
        assert n["healthy"] is True
    assert [n["role"] for n in nodes].count("ROLE_LEADER") == 1
    assert len({n["leader"] for n in nodes}) == 1


def test_cli_job_submit_and_get_json_print_the_job(quiet_cluster):
    c = quiet_cluster
    r = run_cli("job", "submit", "--json", "--handler", "noop", "--name", "from-cli", cluster=c.cluster)
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["id"].startswith("j")
    assert job["state"] == "JOB_STATE_QUEUED"  # no executors in this cluster
    r = run_cli("job", "get", "--json", job["id"], cluster=c.cluster)
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["id"] == job["id"] and again["spec"]["name"] == "from-cli"
    r = run_cli("job", "submit", "--json", "--", "sh", "-c", "echo hi", cluster=c.cluster)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["spec"]["command"] == ["sh", "-c", "echo hi"]


@pytest.mark.parametrize("args", [
    ("job", "submit", "--no-such-flag"),
    ("job", "submit", "--handler", "noop", "--max-attempts", "many"),
    ("job", "submit", "--handler", "noop", "--max-attempts", "101"),  # refused by the cluster
    ("job", "get", "j999999999"),  # NOT_FOUND from the cluster
    ("no-such-command",),
])
def test_cli_errors_are_one_line_on_stderr_with_a_nonzero_exit(quiet_cluster, args):
    r = run_cli(*args, cluster=quiet_cluster.cluster)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr


def test_a_follower_forwards_a_submit_to_the_leader(quiet_cluster):
    c = quiet_cluster
    leader = c.wait_leader()
    follower = next(n for n in c.ids if n != leader)
    # A bare stub on the follower's address: no leader following, no retries elsewhere.
    with grpc.insecure_channel(c.addr[follower]) as channel:
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        response, call = stub.SubmitJob.with_call(scheduler_pb2.SubmitJobRequest(
            spec=J.JobSpec(handler="noop", name="via-follower", idempotency_key="via-follower-1")), timeout=10)
    assert response.job.id and not response.existed
    assert c.local_status(follower).role != c.local_status(leader).role
    # The answer names the leader, so a client can go there directly next time...
    assert ("raftsched-leader", c.addr[leader]) in call.trailing_metadata()
    # ...which the project's client does: after one forwarded call it calls the leader.
    client = c.client(follower, leader)
    c.wait_caught_up(follower)
    assert client.get_job(response.job.id, stale=True).id == response.job.id  # a stale read: served by the follower
    assert client.leader == c.addr[follower]
    client.submit_job(J.JobSpec(handler="noop", name="via-follower-2"))
    assert client.leader == c.addr[leader]
    # It is in the replicated state: the leader serves it.
    assert c.client(leader).get_job(response.job.id).spec.name == "via-follower"


def test_stale_get_on_a_follower_answers_from_local_state(make_cluster):
    c = make_cluster()
    leader = c.wait_leader()
    follower, other = [n for n in c.ids if n != leader]
    job = c.submit(c.client(), handler="noop", name="stale-read")
    c.wait_caught_up(follower)
    # With the leader and the other follower frozen, only local state can answer.
    c.pause(leader)
    c.pause(other)
    try:
        local = c.client(follower, timeout=3)
        assert local.get_job(job.id, stale=True).spec.name == "stale-read"
        with pytest.raises(ClientError) as err:
            local.get_job(job.id, stale=False)  # a linearizable read needs a quorum
        assert err.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"), err.value
        with pytest.raises(ClientError) as err:
            local.get_job("j999999999", stale=True)
        assert err.value.code == "NOT_FOUND"
    finally:
        c.resume(leader)
        c.resume(other)
    c.wait_leader()
    wait_for(lambda: c.client(follower).get_job(job.id).id == job.id, 10, "a linearizable read after healing")

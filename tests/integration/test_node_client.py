"""The Node.js example client (examples/node-client, @grpc/grpc-js + @grpc/proto-loader) submits a
job to a real 3-node cluster with one executor and sees it succeed (issue 7)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node-client"
NODE, NPM = shutil.which("node"), shutil.which("npm")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example with its pinned dependencies installed by `npm ci`."""
    if NODE is None or NPM is None:
        pytest.skip("node and npm are not installed: the Node.js example client cannot be tested here")
    work = tmp_path_factory.mktemp("node-client")
    for name in ("package.json", "package-lock.json", "client.js", "stream.js", "scheduler.js"):
        shutil.copy(EXAMPLE / name, work / name)
    r = subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=work, capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, f"npm ci failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return work


def run_example(work: Path, cluster: str, *args: str, script: str = "client.js",
                ) -> tuple[int, list[dict[str, object]], str]:
    env = dict(os.environ, RAFTSCHED_CLUSTER=cluster, RAFTSCHED_PROTO_DIR=str(ROOT / "proto"))
    r = subprocess.run([str(NODE), script, *args], cwd=work, capture_output=True, text=True, timeout=120,
                       env=env, check=False)
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return r.returncode, events, r.stderr


def test_the_node_client_submits_a_job_and_sees_it_succeed(installed, make_cluster):
    c = make_cluster(executors=1)
    leader = c.wait_leader()
    follower = next(n for n in c.ids if n != leader)
    # A follower first: it forwards the submit; the watch works from any node.
    cluster = ",".join([c.addr[follower], c.addr[leader]])
    code, events, stderr = run_example(installed, cluster, "--handler", "echo", "--payload", "hi from node",
                                       "--key", "node-client-1", "--timeout", "60")
    assert code == 0, (events, stderr)
    done = events[-1]
    assert done["event"] == "done" and done["state"] == "SUCCEEDED", events
    job = c.get(str(done["id"]))
    assert job.spec.idempotency_key == "node-client-1" and job.spec.handler == "echo"
    # The same key again is the same job (idempotency across clients and languages).
    code, again, stderr = run_example(installed, cluster, "--handler", "echo", "--key", "node-client-1")
    assert code == 0, (again, stderr)
    assert again[0]["existed"] is True and again[0]["id"] == done["id"]


def test_the_node_client_retries_past_a_dead_node(installed, make_cluster):
    c = make_cluster(executors=1)
    leader = c.wait_leader()
    dead = next(n for n in c.ids if n != leader)
    c.kill(dead)
    cluster = ",".join([c.addr[dead], *(c.addr[n] for n in c.ids if n != dead)])
    code, events, stderr = run_example(installed, cluster, "--handler", "noop", "--timeout", "60")
    assert code == 0, (events, stderr)
    assert any(e["event"] == "retry" and e["code"] == "UNAVAILABLE" for e in events), events
    assert events[-1]["state"] == "SUCCEEDED"


def test_the_node_stream_example_submits_many_jobs_on_one_stream(installed, make_cluster):
    """examples/node-client/stream.js: 300 submits on one SubmitJobStream through a follower (it
    forwards each), two refused alone; every acknowledged id is a job of the cluster."""
    c = make_cluster()
    leader = c.wait_leader()
    follower = next(n for n in c.ids if n != leader)
    code, events, stderr = run_example(installed, ",".join([c.addr[follower], c.addr[leader]]), "--count", "300",
                                       "--bad", "2", "--timeout", "60", script="stream.js")
    assert code == 0, (events, stderr)
    done = events[-1]
    assert done["ok"] == 300 and done["unanswered"] == 0, done
    assert sorted(done["refused"]) == ["bad-0", "bad-1"], done["refused"]
    assert all("INVALID_ARGUMENT" in why for why in done["refused"].values()), done["refused"]
    ids = done["ids"]
    assert len(set(ids)) == 300
    for job_id in ids[::50]:
        assert c.get(str(job_id)).id == job_id

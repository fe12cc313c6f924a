"""A real 3-node cluster with mutual TLS and bearer tokens (processes on 127.0.0.1).

One cluster per module: n1..n3 started with `--tls-dir` (certificates from `certs init`) and a
`--tokens-file` granting one token per role. Every test reaches it through the project's client
or the CLI, with the certificates, tokens or lack of them that the test is about.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from integration.cluster import Cluster, run_cli, wait_for

from raftsched.client import Client, ClientError
from raftsched.config import TLSConfig, resolve_tls
from raftsched.security import certs
from raftsched.security.tls import channel_credentials
from raftsched.v1 import jobs_pb2, raft_pb2, raft_pb2_grpc

pytestmark = [pytest.mark.integration]

TOKENS = {
    "submitter": "submitter-token-5b0e9c1f7a2d4e68",
    "reader": "reader-token-1c8f2a7e9d3b4056",
    "executor": "executor-token-6e2d8b4a1f9c7035",
    "admin": "admin-token-3a9f1e7c5b2d8046",
}
SHORT = 4.0  # seconds a refused call may take before it fails


@dataclass
class TLSCluster(Cluster):
    tls_dir: Path = Path()

    def client(self, *nids: str, timeout: float = 10.0) -> Client:
        """A client with client.crt (role submitter), as the harness and wait helpers expect."""
        return self.client_as(resolve_tls(tls_dir=str(self.tls_dir), role="client"), *nids, timeout=timeout)

    def client_as(self, tls: TLSConfig | None, *nids: str, token: str = "", timeout: float = 10.0) -> Client:
        addresses = [self.addr[n] for n in (nids or self.ids)]
        client = Client(addresses, timeout=timeout, tls=tls, token=token)
        self._clients.append(client)
        return client

    def tls(self, role: str) -> TLSConfig:
        return resolve_tls(tls_dir=str(self.tls_dir), role=role)

    def follower(self) -> str:
        leader = self.wait_leader()
        return next(n for n in self.ids if n != leader)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSCluster]:
    root = tmp_path_factory.mktemp("tls-cluster")
    tls = root / "tls"
    certs.init_dir(tls)
    tokens = root / "tokens.toml"
    tokens.write_text("[tokens]\n" + "".join(f'"{t}" = "{r}"\n' for r, t in TOKENS.items()))
    tokens.chmod(0o600)
    c = TLSCluster(root, node_flags=("--tls-dir", str(tls), "--tokens-file", str(tokens)), tls_dir=tls)
    try:
        c.start_all()
        c.wait_leader(30)
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()


@pytest.fixture
def live(request: pytest.FixtureRequest, cluster: TLSCluster) -> Iterator[TLSCluster]:
    yield cluster
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(cluster.logs())


def _refused(call: object, code: str) -> ClientError:
    with pytest.raises(ClientError) as err:
        call()  # type: ignore[operator]
    assert err.value.code == code, err.value
    return err.value


def _noop() -> jobs_pb2.JobSpec:
    return jobs_pb2.JobSpec(handler="noop")


# --- who may connect at all ---


def test_a_certified_client_submits_and_reads(live: TLSCluster) -> None:
    client = live.client()
    job = client.submit_job(_noop()).job
    assert client.get_job(job.id).id == job.id
    assert job.id in {j.id for j in client.list_jobs().jobs}
    assert len(client.status().nodes) == 3


def test_a_client_without_a_certificate_is_refused(live: TLSCluster) -> None:
    plain = live.client_as(None, timeout=SHORT)
    _refused(lambda: plain.status(), "UNAVAILABLE")
    server_auth_only = live.client_as(TLSConfig(ca=str(live.tls_dir / "ca.crt")), timeout=SHORT)
    _refused(lambda: server_auth_only.status(), "UNAVAILABLE")


def test_a_certificate_from_another_ca_is_refused(live: TLSCluster, tmp_path: Path) -> None:
    certs.init_dir(tmp_path / "other")
    foreign = TLSConfig(cert=str(tmp_path / "other" / "admin.crt"), key=str(tmp_path / "other" / "admin.key"),
                        ca=str(live.tls_dir / "ca.crt"))  # trusts the cluster; the cluster must not trust it
    _refused(lambda: live.client_as(foreign, timeout=SHORT).status(), "UNAVAILABLE")


def test_an_expired_certificate_is_refused(live: TLSCluster, tmp_path: Path) -> None:
    ca = certs.load_issuer(live.tls_dir)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    cert, key = certs.issue(ca, role="admin", common_name="raftsched-expired", days=1, not_before=start)
    certs.write_pair(tmp_path, "expired", cert, key)
    shutil.copy(live.tls_dir / "ca.crt", tmp_path / "ca.crt")
    expired = resolve_tls(tls_dir=str(tmp_path), role="expired")
    _refused(lambda: live.client_as(expired, timeout=SHORT).status(), "UNAVAILABLE")


def test_the_cli_without_certificates_fails_and_with_them_works(live: TLSCluster) -> None:
    plain = run_cli("status", "--timeout", "3s", cluster=live.cluster)
    assert plain.returncode != 0 and "Traceback" not in plain.stderr
    certified = run_cli("status", "--json", "--tls-dir", str(live.tls_dir), cluster=live.cluster)
    assert certified.returncode == 0, certified.stderr
    assert '"leader"' in certified.stdout


# --- roles ---


def test_a_submitter_token_cannot_add_members(live: TLSCluster) -> None:
    follower = live.follower()
    for nids in ((), (follower,)):  # on any node, and forwarded from a follower
        client = live.client_as(live.tls("client"), *nids, token=TOKENS["submitter"])
        _refused(lambda c=client: c.add_member("n9", "127.0.0.1:1", learner=True), "PERMISSION_DENIED")
    assert live.client().list_members().learners == []


def test_a_certificate_role_is_enforced_on_forwarded_calls(live: TLSCluster, tmp_path: Path) -> None:
    """A follower forwards with its node certificate; the leader judges the original caller."""
    follower = live.follower()
    submitter = live.client_as(live.tls("client"), follower)
    _refused(lambda: submitter.save_snapshot(str(tmp_path / "no.bak")), "PERMISSION_DENIED")
    admin = live.client_as(live.tls("admin"), follower)
    assert admin.save_snapshot(str(tmp_path / "ok.bak")) > 0
    assert submitter.submit_job(_noop()).job.id


def test_an_admin_token_may_do_admin_work(live: TLSCluster, tmp_path: Path) -> None:
    admin = live.client_as(live.tls("client"), token=TOKENS["admin"])
    assert admin.save_snapshot(str(tmp_path / "backup.bak")) > 0


def test_an_executor_identity_cannot_submit_jobs(live: TLSCluster) -> None:
    by_cert = live.client_as(live.tls("executor"))
    _refused(lambda: by_cert.submit_job(_noop()), "PERMISSION_DENIED")
    _refused(lambda: by_cert.list_jobs(), "PERMISSION_DENIED")
    by_token = live.client_as(live.tls("client"), token=TOKENS["executor"])
    _refused(lambda: by_token.submit_job(_noop()), "PERMISSION_DENIED")


def test_a_reader_token_reads_but_cannot_write(live: TLSCluster) -> None:
    job = live.client().submit_job(_noop()).job
    reader = live.client_as(live.tls("client"), token=TOKENS["reader"])
    assert reader.get_job(job.id).id == job.id
    _refused(lambda: reader.submit_job(_noop()), "PERMISSION_DENIED")
    _refused(lambda: reader.cancel_job(job.id), "PERMISSION_DENIED")


def test_an_unknown_token_is_unauthenticated(live: TLSCluster) -> None:
    stranger = live.client_as(live.tls("client"), token="not-a-known-token-0123456789")
    _refused(lambda: stranger.status(), "UNAUTHENTICATED")


@pytest.mark.parametrize("role", ["client", "admin", "executor"])
def test_a_raft_call_with_a_client_certificate_is_refused(live: TLSCluster, role: str) -> None:
    target = live.addr[live.ids[0]]
    # A pre-vote changes nothing even if it were served; the call must not reach the core at all.
    vote = raft_pb2.VoteRequest(to=live.ids[0], term=10**6, last_log_index=10**9, last_log_term=10**6,
                                pre_vote=True, **{"from": "n2"})
    with (grpc.secure_channel(target, channel_credentials(live.tls(role))) as channel,
          pytest.raises(grpc.RpcError) as err):
        raft_pb2_grpc.RaftStub(channel).RequestVote(vote, timeout=SHORT)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_an_executor_with_its_certificate_runs_a_job(live: TLSCluster) -> None:
    live.start_executor("e1", 2, "--tls-dir", str(live.tls_dir))
    live.wait_executors("e1")
    client = live.client()
    job = client.submit_job(jobs_pb2.JobSpec(handler="echo", payload=b"over mTLS")).job
    done = live.wait_state(job.id, jobs_pb2.JOB_STATE_SUCCEEDED, client=client)
    assert done.attempts[-1].executor == "e1"
    wait_for(lambda: live.executors["e1"].alive(), 1, "the executor keeps running")

"""A real 3-node mutual-TLS cluster with executor identities (issue 14): a certificate from
`certs init --executor e1` registers as e1 only, a token bound to e2 in the tokens file registers
as e2 only (PERMISSION_DENIED otherwise, counted as `register/identity`), while the shared
`executor.crt` and an unbound executor token keep registering under any id, as before."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from integration.cluster import wait_for
from integration.test_hostile_executor import Hand, register

from raftsched.config import TLSConfig
from raftsched.security import certs
from raftsched.security.tls import channel_credentials
from raftsched.testing.procs import free_port_range
from raftsched.v1 import jobs_pb2

from .test_tls_cluster import TLSCluster

pytestmark = [pytest.mark.integration]

BOUND = "executor-token-bound-to-e2-5f1c8a"
FREE = "executor-token-unbound-9d3e7b21"
_REFUSED = re.compile(r'^raftsched_executor_messages_refused_total\{kind="register",reason="identity"\} '
                      r'([0-9.e+]+)$', re.M)


@dataclass
class Cluster(TLSCluster):
    metrics: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.metrics = dict(zip(self.ids, (f"127.0.0.1:{p}" for p in free_port_range(self.size)), strict=True))

    def start(self, nid: str) -> None:
        flags = self.node_flags
        self.node_flags = (*flags, "--metrics-listen", self.metrics[nid])
        try:
            super().start(nid)
        finally:
            self.node_flags = flags

    def identity_refusals(self) -> float:
        with urllib.request.urlopen(f"http://{self.metrics[self.wait_leader()]}/metrics", timeout=2) as response:
            found = _REFUSED.search(response.read().decode())
        return float(found.group(1)) if found else 0.0

    def as_executor(self, stem: str) -> TLSConfig:
        return TLSConfig(cert=str(self.tls_dir / f"{stem}.crt"), key=str(self.tls_dir / f"{stem}.key"),
                         ca=str(self.tls_dir / "ca.crt"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("executor-certs")
    tls = root / "tls"
    certs.init_dir(tls, executors=["e1"])
    tokens = root / "tokens.toml"
    tokens.write_text(f'[tokens]\n"{BOUND}" = {{ role = "executor", executor = "e2" }}\n"{FREE}" = "executor"\n')
    tokens.chmod(0o600)
    c = Cluster(root, node_flags=("--tls-dir", str(tls), "--tokens-file", str(tokens)), tls_dir=tls)
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
def live(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Cluster]:
    yield cluster
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        print(cluster.logs())


async def _connect(c: Cluster, tls: TLSConfig, executor_id: str, token: str = "") -> grpc.StatusCode:
    """Register `executor_id` over TLS with these credentials: OK, or the refusal's code."""
    async with grpc.aio.secure_channel(c.addr[c.wait_leader()], channel_credentials(tls, token)) as channel:
        hand = Hand(channel)
        try:
            await hand.open(register(executor_id))
            await hand.heartbeat()
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.PERMISSION_DENIED:
                assert "register.executor_id" in (err.details() or ""), err.details()
            return err.code()
        finally:
            hand.close()


def _listed(c: Cluster) -> set[str]:
    return {e.id for e in c.client().list_executors().executors}


@pytest.fixture
def before(live: Cluster) -> float:
    """The leader's count of identity refusals before the test."""
    return live.identity_refusals()


def test_an_executor_with_its_own_certificate_registers_and_runs_a_job(live: Cluster) -> None:
    tls = live.tls_dir
    live.start_executor("e1", 2, "--tls-dir", str(tls), "--tls-cert", str(tls / "executor-e1.crt"),
                        "--tls-key", str(tls / "executor-e1.key"))
    live.wait_executors("e1")
    client = live.client()
    job = client.submit_job(jobs_pb2.JobSpec(handler="echo", payload=b"as e1")).job
    done = live.wait_state(job.id, jobs_pb2.JOB_STATE_SUCCEEDED, client=client)
    assert done.attempts[-1].executor == "e1"


async def test_a_certificate_naming_e1_cannot_register_as_another_executor(live: Cluster,
                                                                          before: float) -> None:
    assert await _connect(live, live.as_executor("executor-e1"), "e9") == grpc.StatusCode.PERMISSION_DENIED
    assert "e9" not in _listed(live)
    assert live.identity_refusals() == before + 1


def test_an_executor_process_with_another_ids_certificate_says_why_it_cannot_register(live: Cluster) -> None:
    tls = live.tls_dir
    proc = live.start_executor("e5", 1, "--tls-dir", str(tls), "--tls-cert", str(tls / "executor-e1.crt"),
                               "--tls-key", str(tls / "executor-e1.key"))
    wait_for(lambda: "event=register-refused" in proc.log.read_text(errors="replace"), 20,
             "the executor logs the refusal")
    text = proc.log.read_text(errors="replace")
    assert "code=PERMISSION_DENIED" in text and "ERROR" in text
    assert text.count("event=register-refused") == 1  # once, not at every retry
    assert "e5" not in _listed(live) and proc.alive()
    live.kill_executor("e5")


async def test_the_shared_executor_certificate_registers_under_any_id(live: Cluster, before: float) -> None:
    assert await _connect(live, live.as_executor("executor"), "shared-1") == grpc.StatusCode.OK
    assert await _connect(live, live.as_executor("executor"), "shared-2") == grpc.StatusCode.OK
    assert {"shared-1", "shared-2"} <= _listed(live)
    assert live.identity_refusals() == before


async def test_a_token_bound_to_e2_registers_as_e2_only(live: Cluster, before: float) -> None:
    client_cert = live.tls("client")  # role submitter: the token's role (executor) wins
    assert await _connect(live, client_cert, "e3", BOUND) == grpc.StatusCode.PERMISSION_DENIED
    assert await _connect(live, client_cert, "e2", BOUND) == grpc.StatusCode.OK
    assert "e2" in _listed(live) and "e3" not in _listed(live)
    assert live.identity_refusals() == before + 1


async def test_an_unbound_executor_token_registers_under_any_id(live: Cluster) -> None:
    assert await _connect(live, live.tls("client"), "free-1", FREE) == grpc.StatusCode.OK
    assert await _connect(live, live.tls("client"), "free-2", FREE) == grpc.StatusCode.OK

"""A real 3-node mutual-TLS cluster whose nodes have certificates naming them (`certs init --node`):
Raft messages a certificate's holder sends in another node's name are refused (issue 14), while
the cluster elects and commits through the same check. A node certificate that names no node
(the shared `node.crt`) is still served, unchecked, as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from integration.cluster import Cluster

from raftsched.config import TLSConfig, resolve_tls
from raftsched.security import certs
from raftsched.security.tls import channel_credentials
from raftsched.v1 import raft_pb2, raft_pb2_grpc

from .test_tls_cluster import TLSCluster

pytestmark = [pytest.mark.integration]

CALL_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TLSCluster, Path]]:
    root = tmp_path_factory.mktemp("node-certs")
    tls = root / "tls"
    certs.init_dir(tls, nodes=["n1", "n2", "n3"])
    c = TLSCluster(root, node_flags=("--tls-dir", str(tls)), tls_dir=tls)
    try:
        c.start_all()
        c.wait_leader(30)
        yield c, tls
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()


def _as(tls: Path, stem: str) -> TLSConfig:
    return resolve_tls(tls_dir=str(tls), role=stem)


def _vote(c: Cluster, creds: TLSConfig, to: str, frm: str, **fields: object) -> grpc.RpcError | None:
    with grpc.secure_channel(c.addr[to], channel_credentials(creds)) as channel:
        stub = raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]
        try:
            stub.RequestVote(raft_pb2.VoteRequest(to=to, **{"from": frm}, **fields), timeout=CALL_TIMEOUT)  # type: ignore[arg-type]
        except grpc.RpcError as err:
            return err
    return None


def _heartbeat(c: Cluster, creds: TLSConfig, to: str, frm: str, term: int) -> grpc.StatusCode:
    request = raft_pb2.AppendEntriesRequest(to=to, term=term, heartbeat=True, **{"from": frm})  # type: ignore[arg-type]
    with grpc.secure_channel(c.addr[to], channel_credentials(creds)) as channel:
        stub = raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]
        try:
            list(stub.AppendEntries(iter([request]), timeout=CALL_TIMEOUT))
        except grpc.RpcError as err:
            return err.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def test_nodes_elect_and_commit_through_the_check(cluster: tuple[Cluster, Path]) -> None:
    """Each node serves and calls with node-<id>.crt (`test_node_identity` checks the pick), so
    every Raft message between them passes the certificate check."""
    c, _ = cluster
    c.wait_leader()
    job = c.submit(handler="noop")
    for nid in c.ids:
        c.wait_caught_up(nid)
    assert c.get(job.id).id == job.id


def test_a_message_in_another_nodes_name_is_refused(cluster: tuple[Cluster, Path]) -> None:
    c, tls = cluster
    leader = c.wait_leader()
    term = c.local_status(leader).term
    n1 = _as(tls, "node-n1")
    others = [n for n in c.ids if n != "n1"]
    for to in others:
        impostor = next(n for n in c.ids if n not in ("n1", to))
        err = _vote(c, n1, to, impostor, term=term + 1, last_log_index=10**6, last_log_term=term, pre_vote=True)
        assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED, err  # type: ignore[attr-defined]
        assert "from-not-certificate" in (err.details() or "")  # type: ignore[attr-defined]
        assert _heartbeat(c, n1, to, impostor, term) == grpc.StatusCode.PERMISSION_DENIED
    # In its own name the same certificate gets through the check (and the range check after it).
    err = _vote(c, n1, others[0], "n1", term=2**64 - 1, last_log_index=1, last_log_term=1)
    assert err is not None and "term-out-of-range" in (err.details() or "")  # type: ignore[attr-defined]
    assert c.wait_leader() == leader and c.local_status(leader).term == term
    c.submit(handler="noop")


def test_the_shared_node_certificate_is_not_checked(cluster: tuple[Cluster, Path]) -> None:
    """It names no node, so whoever holds it may speak for any: only per-node certificates help.
    A pre-vote in n2's name reaches the core (which gives no answer while it has a live leader)."""
    c, tls = cluster
    leader = c.wait_leader()
    to = next(n for n in c.ids if n != leader)
    impostor = next(n for n in c.ids if n not in (leader, to))
    term = c.local_status(leader).term
    err = _vote(c, _as(tls, "node"), to, impostor, term=term + 1, last_log_index=1, last_log_term=1, pre_vote=True)
    assert err is None or err.code() != grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert c.wait_leader() == leader

"""Node certificates that name their node (issue 14): `certs init --node ID`, the identity the
authenticator reads from them, and the node picking its own certificate from --tls-dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from raftsched.config import load_node_config
from raftsched.security import certs
from raftsched.security.auth import CALLER, Authenticator, certificate_node
from raftsched.security.tokens import Identity

VOTE = "/raftsched.v1.Raft/RequestVote"


def _pem(path: Path) -> bytes:
    return path.read_bytes()


def test_init_writes_a_certificate_naming_each_node(tmp_path: Path) -> None:
    written = {p.name for p in certs.init_dir(tmp_path, nodes=["n1", "n2"])}
    assert {"node-n1.crt", "node-n1.key", "node-n2.crt", "node-n2.key", "node.crt"} <= written
    n1 = x509.load_pem_x509_certificate(_pem(tmp_path / "node-n1.crt"))
    assert certs.node_of(n1) == "n1" and certs.role_of(n1) == "peer"
    shared = x509.load_pem_x509_certificate(_pem(tmp_path / "node.crt"))
    assert certs.node_of(shared) is None and certs.role_of(shared) == "peer"


@pytest.mark.parametrize("bad", ["", "n 1", "n1/..", "x" * 65])
def test_init_refuses_node_ids_that_cannot_be_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(certs.CertsError, match="node id"):
        certs.init_dir(tmp_path, nodes=[bad])
    assert not list(tmp_path.glob("*.crt"))


def test_the_authenticator_reads_the_node_only_from_a_peer_certificate() -> None:
    ca = certs.make_ca(days=10)
    auth = Authenticator(certificates=True, tokens=None)

    def identity(role: str, node: str) -> Identity:
        cert, _ = certs.issue(ca, role=role, common_name="x", node_id=node)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        return auth.identify({"x509_pem_cert": [pem]}, ())

    assert identity("peer", "n3").node == "n3"
    assert identity("peer", "").node is None
    assert identity("admin", "n3").node is None  # only a node's certificate speaks for a node
    auth.authorize(identity("peer", "n3"), VOTE, ())


def test_certificate_node_is_the_callers() -> None:
    assert certificate_node() is None  # insecure mode: nothing to check against
    token = CALLER.set(Identity("cert:raftsched-node-n2", "peer", "cert", "n2"))
    try:
        assert certificate_node() == "n2"
    finally:
        CALLER.reset(token)


def test_a_node_picks_its_own_certificate_from_the_tls_dir(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    certs.init_dir(tls, nodes=["n2"])
    args = {"id": "n2", "listen": "127.0.0.1:7002", "data_dir": str(tmp_path / "d2"), "tls_dir": str(tls),
            "peers": "n2=127.0.0.1:7002,n3=127.0.0.1:7003"}  # fmt: skip
    assert load_node_config(args, env={}).tls.cert == str(tls / "node-n2.crt")
    other = {**args, "id": "n3", "listen": "127.0.0.1:7003", "data_dir": str(tmp_path / "d3")}
    assert load_node_config(other, env={}).tls.cert == str(tls / "node.crt")  # none of its own: the shared one

"""The Authenticator without a server: identities from certificates and tokens, role checks, and
forwarded calls judged by the original caller's role."""

from __future__ import annotations

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from raftsched.security import certs
from raftsched.security.auth import Authenticator, AuthError
from raftsched.security.tokens import TokenTable

TOKEN = "reader-token-0123456789abcdef"
SUBMIT = "/raftsched.v1.Scheduler/SubmitJob"
ADD_MEMBER = "/raftsched.v1.Admin/AddMember"
VOTE = "/raftsched.v1.Raft/RequestVote"


@pytest.fixture(scope="module")
def ca() -> certs.Issuer:
    return certs.make_ca(days=10)


def _auth_context(ca: certs.Issuer, role: str) -> dict[str, list[bytes]]:
    cert, _ = certs.issue(ca, role=role, common_name=f"raftsched-{role}")
    return {"x509_pem_cert": [cert.public_bytes(serialization.Encoding.PEM)]}


def _auth(tokens: bool = True) -> Authenticator:
    table = TokenTable.parse({"tokens": {TOKEN: "reader"}}) if tokens else None
    return Authenticator(certificates=True, tokens=table)


def _code(fn: object, *args: object) -> grpc.StatusCode:
    with pytest.raises(AuthError) as err:
        fn(*args)  # type: ignore[operator]
    return err.value.code


def test_a_certificate_names_its_role(ca: certs.Issuer) -> None:
    identity = _auth().identify(_auth_context(ca, "submitter"), ())
    assert (identity.role, identity.source, identity.name) == ("submitter", "cert", "cert:raftsched-submitter")


def test_no_certificate_and_no_token_is_unauthenticated() -> None:
    assert _code(_auth().identify, {}, ()) == grpc.StatusCode.UNAUTHENTICATED


def test_a_token_wins_over_the_certificate_and_a_bad_one_is_unauthenticated(ca: certs.Issuer) -> None:
    ctx = _auth_context(ca, "admin")
    identity = _auth().identify(ctx, (("authorization", f"Bearer {TOKEN}"),))
    assert identity.role == "reader"
    bad = (("authorization", "Bearer wrong-token-0123456789abcdef"),)
    assert _code(_auth().identify, ctx, bad) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(_auth(tokens=False).identify, ctx, (("authorization", f"Bearer {TOKEN}"),)) == \
        grpc.StatusCode.UNAUTHENTICATED


def test_wrong_role_is_permission_denied(ca: certs.Issuer) -> None:
    auth = _auth()
    executor = auth.identify(_auth_context(ca, "executor"), ())
    assert _code(auth.authorize, executor, SUBMIT, ()) == grpc.StatusCode.PERMISSION_DENIED
    client = auth.identify(_auth_context(ca, "submitter"), ())
    assert auth.authorize(client, SUBMIT, ()) == "submitter"
    assert _code(auth.authorize, client, VOTE, ()) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(auth.authorize, client, ADD_MEMBER, ()) == grpc.StatusCode.PERMISSION_DENIED


def test_a_certificate_without_a_role_may_call_nothing(ca: certs.Issuer) -> None:
    auth = _auth()
    nobody = auth.identify(_auth_context(ca, "janitor"), ())
    assert nobody.role is None
    assert _code(auth.authorize, nobody, "/grpc.health.v1.Health/Check", ()) == grpc.StatusCode.PERMISSION_DENIED


def test_forwarded_calls_are_judged_by_the_original_role_and_only_from_peers(ca: certs.Issuer) -> None:
    auth = _auth()
    peer = auth.identify(_auth_context(ca, "peer"), ())
    assert auth.authorize(peer, VOTE, ()) == "peer"
    assert _code(auth.authorize, peer, SUBMIT, ()) == grpc.StatusCode.PERMISSION_DENIED
    assert auth.authorize(peer, SUBMIT, (("raftsched-forwarded", "submitter"),)) == "submitter"
    assert _code(auth.authorize, peer, ADD_MEMBER, (("raftsched-forwarded", "submitter"),)) == \
        grpc.StatusCode.PERMISSION_DENIED
    assert auth.authorize(peer, ADD_MEMBER, (("raftsched-forwarded", "admin"),)) == "admin"
    for bogus in ("peer", "executor", "1"):
        assert _code(auth.authorize, peer, SUBMIT, (("raftsched-forwarded", bogus),)) == \
            grpc.StatusCode.PERMISSION_DENIED
    # a client cannot claim to be forwarding for someone else
    client = auth.identify(_auth_context(ca, "reader"), ())
    assert _code(auth.authorize, client, SUBMIT, (("raftsched-forwarded", "admin"),)) == \
        grpc.StatusCode.PERMISSION_DENIED


def test_certificate_identities_are_cached_within_a_bound(ca: certs.Issuer) -> None:
    auth = _auth()
    for _ in range(300):
        auth.identify(_auth_context(ca, "reader"), ())
    assert len(auth._cert_cache) <= 256

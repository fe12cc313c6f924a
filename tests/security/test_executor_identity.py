"""Executor identities (issue 14): `certs init --executor ID` writes a certificate naming
`urn:raftsched:executor:ID`, a tokens-file entry can bind an executor token to one id, and the
authenticator reads the bound id from either (never from another role's certificate)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from raftsched.security import certs
from raftsched.security.auth import CALLER, Authenticator, caller_executor
from raftsched.security.tokens import Identity, TokenError, TokenTable, digest

CONNECT = "/raftsched.v1.Executor/Connect"
BOUND = "executor-token-bound-0123456789"
FREE = "executor-token-free-0123456789"
RAFTSCHED = Path(sys.executable).parent / "raftsched"


def test_init_writes_a_certificate_naming_each_executor(tmp_path: Path) -> None:
    written = {p.name for p in certs.init_dir(tmp_path, executors=["e1", "gpu-7.eu"])}
    assert {"executor-e1.crt", "executor-e1.key", "executor-gpu-7.eu.crt", "executor.crt"} <= written
    e1 = x509.load_pem_x509_certificate((tmp_path / "executor-e1.crt").read_bytes())
    assert certs.executor_of(e1) == "e1" and certs.role_of(e1) == "executor" and certs.node_of(e1) is None
    shared = x509.load_pem_x509_certificate((tmp_path / "executor.crt").read_bytes())
    assert certs.executor_of(shared) is None and certs.role_of(shared) == "executor"
    assert (tmp_path / "executor-e1.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("bad", ["", "-e1", ".e1", "e 1", "e1/..", "x" * 129])
def test_init_refuses_executor_ids_the_leader_would_refuse(tmp_path: Path, bad: str) -> None:
    with pytest.raises(certs.CertsError, match="executor id"):
        certs.init_dir(tmp_path, executors=[bad])
    assert not list(tmp_path.glob("*.crt"))


def test_the_cli_writes_executor_certificates(tmp_path: Path) -> None:
    run = subprocess.run([str(RAFTSCHED), "certs", "init", "--dir", str(tmp_path), "--executor", "e1",
                          "--executor", "e2"], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert "executor-e1.crt" in run.stdout and (tmp_path / "executor-e2.crt").exists()
    bad = subprocess.run([str(RAFTSCHED), "certs", "init", "--dir", str(tmp_path / "x"), "--executor", "a b"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "executor id" in bad.stderr and "Traceback" not in bad.stderr


def test_the_authenticator_reads_the_executor_only_from_an_executor_certificate() -> None:
    ca = certs.make_ca(days=10)
    auth = Authenticator(certificates=True, tokens=None)

    def identity(role: str, executor: str) -> Identity:
        cert, _ = certs.issue(ca, role=role, common_name="x", executor_id=executor)
        return auth.identify({"x509_pem_cert": [cert.public_bytes(serialization.Encoding.PEM)]}, ())

    assert identity("executor", "e3").executor == "e3"
    assert identity("executor", "").executor is None
    assert identity("admin", "e3").executor is None  # only an executor's certificate speaks for an executor
    assert identity("peer", "e3").executor is None
    auth.authorize(identity("executor", "e3"), CONNECT, ())


def test_tokens_can_be_bound_to_an_executor() -> None:
    table = TokenTable.parse({"tokens": {BOUND: {"role": "executor", "executor": "e7"}, FREE: "executor"}})
    bound, free = table.lookup(BOUND), table.lookup(FREE)
    assert bound is not None and (bound.role, bound.executor) == ("executor", "e7")
    assert free is not None and (free.role, free.executor) == ("executor", None)
    assert list(table._roles) == [digest(BOUND), digest(FREE)]  # still only digests
    no_binding = TokenTable.parse({"tokens": {BOUND: {"role": "reader"}}}).lookup(BOUND)
    assert no_binding is not None and no_binding.role == "reader" and no_binding.executor is None


def test_the_tokens_file_takes_the_table_form(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(f'[tokens]\n"{BOUND}" = {{ role = "executor", executor = "e7" }}\n"{FREE}" = "executor"\n')
    path.chmod(0o600)
    found = TokenTable.load(str(path)).lookup(BOUND)
    assert found is not None and found.executor == "e7"


@pytest.mark.parametrize(("value", "words"), [
    ({"role": "admin", "executor": "e7"}, "only an executor token"),
    ({"role": "executor", "executor": "-e7"}, "executor id"),
    ({"role": "executor", "executor": 7}, "executor id"),
    ({"role": "executor", "executor": "e" * 500}, "executor id"),
    ({"role": "peer"}, "role must be one of"),
    ({"executor": "e7"}, "role must be one of"),
    ({"role": "executor", "node": "n1"}, "unknown key"),
    (["executor"], "role name"),
])
def test_bad_bindings_are_refused_without_quoting_the_token(value: object, words: str) -> None:
    with pytest.raises(TokenError) as err:
        TokenTable.parse({"tokens": {BOUND: value}})
    assert words in str(err.value)
    assert BOUND not in str(err.value)
    assert len(str(err.value)) < 400


def test_caller_executor_is_the_callers_binding() -> None:
    assert caller_executor() is None  # insecure mode: nothing to check against
    for identity, expected in ((Identity("cert:raftsched-executor-e2", "executor", "cert", executor="e2"), "e2"),
                               (Identity("token:abc", "executor", "token"), None)):
        token = CALLER.set(identity)
        try:
            assert caller_executor() == expected
        finally:
            CALLER.reset(token)

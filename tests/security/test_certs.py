"""`certs init`: the development CA, one certificate per role, key files private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from raftsched.security import certs


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_writes_a_ca_and_a_certificate_per_role(tmp_path: Path) -> None:
    written = certs.init_dir(tmp_path / "tls", names=["node1.example", "10.0.0.7"], days=30)
    names = sorted(p.name for p in written)
    assert names == sorted(f"{s}.{e}" for s in ("ca", "node", "executor", "client", "admin") for e in ("crt", "key"))
    ca = _load(tmp_path / "tls" / "ca.crt")
    for stem, role in {"node": "peer", "executor": "executor", "client": "submitter", "admin": "admin"}.items():
        cert = _load(tmp_path / "tls" / f"{stem}.crt")
        assert certs.role_of(cert) == role
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"localhost", "node1.example"} <= set(san.get_values_for_type(x509.DNSName))
        assert {"127.0.0.1", "10.0.0.7"} <= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        ou = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
        assert ou == role
        days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
        assert days == 30
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.suffix == ".key" else 0o644), path
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700


def test_init_refuses_existing_files_unless_forced(tmp_path: Path) -> None:
    certs.init_dir(tmp_path)
    before = (tmp_path / "ca.crt").read_bytes()
    with pytest.raises(certs.CertsError, match="--force"):
        certs.init_dir(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == before
    certs.init_dir(tmp_path, force=True)
    assert (tmp_path / "ca.crt").read_bytes() != before


@pytest.mark.parametrize("name", ["bad name", "-x.example", "a..b", "x" * 64 + ".example"])
def test_init_refuses_names_that_are_not_hosts(tmp_path: Path, name: str) -> None:
    with pytest.raises(certs.CertsError, match="neither an IP"):
        certs.init_dir(tmp_path, names=[name])
    assert not list(tmp_path.iterdir())


def test_init_refuses_zero_days(tmp_path: Path) -> None:
    with pytest.raises(certs.CertsError, match="--days"):
        certs.init_dir(tmp_path, days=0)

"""A development certificate authority: `raftsched certs init --dir DIR`.

Writes, into DIR:

    ca.crt  ca.key                 the CA (keep ca.key off the cluster's machines)
    node.crt node.key              scheduler nodes       role peer (any node id)
    node-<ID>.crt node-<ID>.key    node ID (`--node ID`) role peer, and names ID
    executor.crt executor.key      executors             role executor (any executor id)
    executor-<ID>.crt/.key         executor ID (`--executor ID`) role executor, and names ID
    client.crt client.key          the CLI and clients   role submitter
    admin.crt admin.key            operators             role admin

Every leaf certificate names its role twice: as the subject's OU and as a URI subject alternative
name `urn:raftsched:role:<role>` (the URI is what `raftsched.security.auth` reads). Every leaf has
SANs for 127.0.0.1, localhost and the names given, so any of them can also serve (nodes do).

A per-node certificate also carries the URI SAN `urn:raftsched:node:<id>`: a node serving with
TLS refuses Raft messages that such a certificate's holder sends in the name of another node. A
node given `--tls-dir` uses `node-<its id>.crt` when the directory has one, else `node.crt`.

A per-executor certificate carries the URI SAN `urn:raftsched:executor:<id>`: the leader refuses
a registration under any other executor id from its holder (PERMISSION_DENIED). An executor uses
it with `--tls-dir DIR --tls-cert DIR/executor-<id>.crt --tls-key DIR/executor-<id>.key`.
Keys are ECDSA P-256 (fast handshakes, supported by gRPC's BoringSSL), written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftsched.quoting import quote
from raftsched.security.tokens import is_executor_id

ROLE_URI_PREFIX = "urn:raftsched:role:"
NODE_URI_PREFIX = "urn:raftsched:node:"
EXECUTOR_URI_PREFIX = "urn:raftsched:executor:"
ORGANIZATION = "raftsched"
DEFAULT_DAYS = 365
CA_MIN_DAYS = 3650  # the CA outlives its leaves, so leaves can be renewed under the same CA
DEFAULT_NAMES = ("127.0.0.1", "localhost")

# file stem -> role carried by that certificate
LEAVES: dict[str, str] = {"node": "peer", "executor": "executor", "client": "submitter", "admin": "admin"}


class CertsError(Exception):
    """The certificates cannot be written (files exist, bad name, I/O); the message says why."""


@dataclass(frozen=True, slots=True)
class Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def init_dir(directory: str | os.PathLike[str], *, names: Sequence[str] = (), days: int = DEFAULT_DAYS,
             force: bool = False, nodes: Sequence[str] = (), executors: Sequence[str] = ()) -> list[Path]:
    """Create the CA and every leaf in `directory`, plus `node-<id>.crt` for each of `nodes` and
    `executor-<id>.crt` for each of `executors`; returns the files written."""
    if days < 1:
        raise CertsError(f"--days must be at least 1, got {days}")
    for node in nodes:
        _check_node_id(node)
    for executor in executors:
        _check_executor_id(executor)
    root = Path(directory)
    stems = ["ca", *LEAVES, *(node_stem(n) for n in nodes), *(executor_stem(e) for e in executors)]
    targets = [root / f"{stem}.{ext}" for stem in stems for ext in ("crt", "key")]
    existing = [p.name for p in targets if p.exists()]
    if existing and not force:
        raise CertsError(f"{root} already holds {', '.join(existing)}; use --force to replace them")
    sans = _unique([*DEFAULT_NAMES, *names])
    for name in sans:
        _check_name(name)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = make_ca(days=max(CA_MIN_DAYS, days))
    written = [*_write_pair(root, "ca", ca.cert, ca.key)]
    for stem, role in LEAVES.items():
        cert, key = issue(ca, role=role, common_name=f"raftsched-{stem}", names=sans, days=days)
        written.extend(_write_pair(root, stem, cert, key))
    for node in nodes:
        cert, key = issue(ca, role="peer", common_name=f"raftsched-node-{node}", names=sans, days=days, node_id=node)
        written.extend(_write_pair(root, node_stem(node), cert, key))
    for executor in executors:
        cert, key = issue(ca, role="executor", common_name=f"raftsched-executor-{executor}", names=sans, days=days,
                          executor_id=executor)
        written.extend(_write_pair(root, executor_stem(executor), cert, key))
    return written


def node_stem(node_id: str) -> str:
    """The file stem of node `node_id`'s own certificate in a --tls-dir."""
    return f"node-{node_id}"


def executor_stem(executor_id: str) -> str:
    """The file stem of executor `executor_id`'s own certificate in a --tls-dir."""
    return f"executor-{executor_id}"


def make_ca(*, days: int, common_name: str = "raftsched development CA") -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issuer(cert, key)


def issue(ca: Issuer, *, role: str, common_name: str, names: Iterable[str] = DEFAULT_NAMES, days: int = DEFAULT_DAYS,
          not_before: dt.datetime | None = None, node_id: str = "",
          executor_id: str = "") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate for `role`, usable as TLS server and client, naming node `node_id` or
    executor `executor_id` when given. `not_before` (default: now) lets tests make certificates
    that are already expired."""
    uris = [x509.UniformResourceIdentifier(ROLE_URI_PREFIX + role)]
    if node_id:
        _check_node_id(node_id)
        uris.append(x509.UniformResourceIdentifier(NODE_URI_PREFIX + node_id))
    if executor_id:
        _check_executor_id(executor_id)
        uris.append(x509.UniformResourceIdentifier(EXECUTOR_URI_PREFIX + executor_id))
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - dt.timedelta(minutes=5)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([*_general_names(names), *uris]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


def load_issuer(directory: str | os.PathLike[str]) -> Issuer:
    """The CA written by `init_dir` (for issuing more certificates, e.g. in tests)."""
    root = Path(directory)
    cert = x509.load_pem_x509_certificate((root / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((root / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertsError(f"{root / 'ca.key'} is not an EC key")
    return Issuer(cert, key)


def write_pair(directory: str | os.PathLike[str], stem: str, cert: x509.Certificate,
               key: ec.EllipticCurvePrivateKey) -> list[Path]:
    """Write `<stem>.crt` (0644) and `<stem>.key` (0600), replacing existing files."""
    return _write_pair(Path(directory), stem, cert, key)


def role_of(cert: x509.Certificate) -> str | None:
    """The role a certificate carries in its `urn:raftsched:role:` URI SAN, else None."""
    return _uri_value(cert, ROLE_URI_PREFIX)


def node_of(cert: x509.Certificate) -> str | None:
    """The node id a certificate names in its `urn:raftsched:node:` URI SAN, else None."""
    return _uri_value(cert, NODE_URI_PREFIX)


def executor_of(cert: x509.Certificate) -> str | None:
    """The executor id a certificate names in its `urn:raftsched:executor:` URI SAN, else None."""
    return _uri_value(cert, EXECUTOR_URI_PREFIX)


def _uri_value(cert: x509.Certificate, prefix: str) -> str | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(prefix):
            return uri[len(prefix):]
    return None


# --- helpers ---------------------------------------------------------------------------------


def _write_pair(root: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> list[Path]:
    crt_path, key_path = root / f"{stem}.crt", root / f"{stem}.key"
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write(key_path, key_pem, 0o600)
    _write(crt_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return [crt_path, key_path]


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a fresh file created with `mode`, so a key is never readable by others, not
    even for a moment; then rename over the target."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)  # Why: O_CREAT's mode is filtered by the umask and ignored for an existing tmp
    os.replace(tmp, path)


def _general_names(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _check_name(name: str) -> None:
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    labels = name.removeprefix("*.").split(".")
    if not name or len(name) > 253 or not all(_dns_label_ok(label) for label in labels):
        raise CertsError(f"--name {quote(name)} is neither an IP address nor a DNS name")


def _check_node_id(node_id: str) -> None:
    if not (0 < len(node_id) <= 64 and all(c.isalnum() or c in "-_." for c in node_id)):
        raise CertsError(f"--node {quote(node_id)}: a node id is 1-64 letters, digits, '-', '_' or '.'")


def _check_executor_id(executor_id: str) -> None:
    if not is_executor_id(executor_id):
        raise CertsError(f"--executor {quote(executor_id)}: an executor id is 1-128 letters, digits, '.', '_' or "
                         "'-', not starting with '.' or '-'")


def _dns_label_ok(label: str) -> bool:
    return 0 < len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) and not label.startswith("-")


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)

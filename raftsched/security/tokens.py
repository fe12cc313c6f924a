"""Bearer tokens: a TOML file maps each token to a role; only SHA-256 digests stay in memory.

    # tokens.toml (mode 0600). A key is the token itself, or "sha256:<hex digest>" so that the
    # file need not hold the secret either (make one with `printf %s TOKEN | sha256sum`).
    [tokens]
    "5c1d0f5e0b6e4f7a9d2c8b3a1e6f4d2c" = "submitter"
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" = "admin"
    # an executor token bound to one executor id: it may register as e7 only
    "7d3f0a9c2b8e4d61a5f3c7e9b1d0a2c4" = { role = "executor", executor = "e7" }

An executor token without `executor` may register under any id (as the shared executor
certificate may); one with it is refused a registration under another id (issue 14).

Clients send `authorization: Bearer <token>`. Tokens are long random strings, so one unsalted
SHA-256 is enough to keep them out of memory dumps; no error or log line ever shows a token (an
identity is named `token:<first 12 hex digits of its digest>`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from raftsched.security.roles import EXECUTOR, TOKEN_ROLES

log = logging.getLogger(__name__)

AUTHORIZATION_KEY = "authorization"
MIN_TOKEN_CHARS = 16
_DIGEST_RE = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
# The executor id rule of raftsched.state.validate.EXECUTOR_ID_RE (tests keep them equal); not
# imported from there, since the web console reads tokens and must not import the state machine.
EXECUTOR_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class TokenError(ValueError):
    """A tokens file or an authorization header is malformed (never quotes a token)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a name for logs (never a secret), a role, and how it was proven."""

    name: str
    role: str | None  # None: a CA-signed certificate that carries no raftsched role
    source: str  # "cert" | "token"
    node: str | None = None  # the node id a node certificate names (`certs.node_of`), else None
    executor: str | None = None  # the executor id an executor certificate or token is bound to, else None


def is_executor_id(value: str) -> bool:
    return EXECUTOR_ID_RE.fullmatch(value) is not None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token may do: a role, and for an executor token the executor id it is bound to."""

    role: str
    executor: str | None = None


class TokenTable:
    """Accepted tokens, by digest."""

    def __init__(self, grants_by_digest: Mapping[str, str | Grant]) -> None:
        # digest -> Grant (named _roles still: only digests are kept, and tests look)
        self._roles = {d: g if isinstance(g, Grant) else Grant(g) for d, g in grants_by_digest.items()}

    def __len__(self) -> int:
        return len(self._roles)

    def lookup(self, token: str) -> Identity | None:
        d = digest(token)
        grant = self._roles.get(d)
        if grant is None:
            return None
        return Identity(f"token:{d[:12]}", grant.role, "token", executor=grant.executor)

    @classmethod
    def parse(cls, data: Mapping[str, object], source: str = "tokens file") -> TokenTable:
        table = data.get("tokens")
        unknown = sorted(set(data) - {"tokens"})
        if unknown:
            raise TokenError(f"{source}: unknown key {unknown[0]!r} (want a [tokens] table)")
        if not isinstance(table, Mapping) or not table:
            raise TokenError(f"{source}: needs a [tokens] table of token = role")
        grants: dict[str, str | Grant] = {}
        for number, (key, value) in enumerate(table.items(), 1):
            where = f"{source}: token #{number}"
            grant = _grant(value, where)
            d = _key_digest(str(key), where)
            if d in grants:
                raise TokenError(f"{where}: the same token appears twice")
            grants[d] = grant
        return cls(grants)

    @classmethod
    def load(cls, path: str, *, warn_permissions: bool = True) -> TokenTable:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
            mode = os.stat(path).st_mode
        except OSError as e:
            raise TokenError(f"tokens file {path}: {e.strerror or e}") from e
        except tomllib.TOMLDecodeError as e:
            raise TokenError(f"tokens file {path}: not valid TOML ({e})") from None
        if warn_permissions and mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("tokens file %s is readable by group or others; chmod 600 it", path)
        return cls.parse(data, f"tokens file {path}")


def _grant(value: object, where: str) -> Grant:
    """A role name, or a table `{ role = "executor", executor = "ID" }` binding an executor token."""
    roles = ", ".join(sorted(TOKEN_ROLES))
    if isinstance(value, str):
        if value not in TOKEN_ROLES:
            raise TokenError(f"{where}: role must be one of {roles}, got {value!r}")
        return Grant(value)
    if not isinstance(value, Mapping):
        raise TokenError(f"{where}: want a role name or {{ role = ..., executor = ... }}, got {type(value).__name__}")
    unknown = sorted(set(value) - {"role", "executor"})
    if unknown:
        raise TokenError(f"{where}: unknown key {unknown[0]!r} (want role and executor)")
    role, executor = value.get("role"), value.get("executor")
    if not isinstance(role, str) or role not in TOKEN_ROLES:
        raise TokenError(f"{where}: role must be one of {roles}, got {role!r}")
    if executor is None:
        return Grant(role)
    if role != EXECUTOR:
        raise TokenError(f"{where}: only an executor token can name an executor")
    if not isinstance(executor, str) or not is_executor_id(executor):
        raise TokenError(f"{where}: executor must be an executor id (1-128 of [A-Za-z0-9._-], "
                         f"not starting with '.' or '-'), got {executor!r:.100}")
    return Grant(role, executor)


def _key_digest(key: str, where: str) -> str:
    match = _DIGEST_RE.match(key)
    if match:
        return match.group(1).lower()
    if key.startswith("sha256:"):
        raise TokenError(f"{where}: a sha256: key needs 64 hex digits")
    if len(key) < MIN_TOKEN_CHARS or any(c.isspace() for c in key):
        raise TokenError(f"{where}: a token needs at least {MIN_TOKEN_CHARS} characters and no spaces")
    return digest(key)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` header; None when there is no such header.
    Raises TokenError when the header is there but malformed (two of them, or another scheme)."""
    values = [v for k, v in metadata or () if k == AUTHORIZATION_KEY]
    if not values:
        return None
    if len(values) > 1:
        raise TokenError("more than one authorization header")
    raw = values[0].decode(errors="replace") if isinstance(values[0], bytes) else values[0]
    scheme, _, token = raw.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("the authorization header must be `Bearer <token>`")
    return token.strip()


def read_token_file(path: str) -> str:
    """A process's own token (for --token-file): the file's first line, without whitespace."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.readline().strip()
    except OSError as e:
        raise TokenError(f"token file {path}: {e.strerror or e}") from e
    if not token:
        raise TokenError(f"token file {path} is empty")
    return token

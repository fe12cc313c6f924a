"""Bearer tokens: parsing the tokens file and the authorization header; only digests are kept."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from raftsched.security.tokens import TokenError, TokenTable, bearer_token, digest, read_token_file

SUBMIT = "submit-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"


def test_plain_and_hashed_keys_map_tokens_to_roles() -> None:
    admin_digest = hashlib.sha256(ADMIN.encode()).hexdigest()
    table = TokenTable.parse({"tokens": {SUBMIT: "submitter", f"sha256:{admin_digest.upper()}": "admin"}})
    submitter = table.lookup(SUBMIT)
    admin = table.lookup(ADMIN)
    assert submitter is not None and submitter.role == "submitter" and submitter.source == "token"
    assert admin is not None and admin.role == "admin"
    assert table.lookup("not-a-token-0123456789") is None
    assert SUBMIT not in submitter.name and submitter.name == f"token:{digest(SUBMIT)[:12]}"


def test_only_digests_are_kept_in_memory() -> None:
    table = TokenTable.parse({"tokens": {SUBMIT: "submitter"}})
    assert list(table._roles) == [digest(SUBMIT)]


@pytest.mark.parametrize(("data", "words"), [
    ({}, "[tokens]"),
    ({"tokens": {}}, "[tokens]"),
    ({"tokens": {SUBMIT: "peer"}}, "role must be one of"),
    ({"tokens": {SUBMIT: "root"}}, "role must be one of"),
    ({"tokens": {"short": "admin"}}, "at least 16"),
    ({"tokens": {"has a space in the middle": "admin"}}, "no spaces"),
    ({"tokens": {"sha256:abc": "admin"}}, "64 hex"),
    ({"tokens": {SUBMIT: "admin", f"sha256:{digest(SUBMIT)}": "reader"}}, "twice"),
    ({"token": {SUBMIT: "admin"}}, "unknown key"),
])
def test_bad_tokens_files_are_refused_without_quoting_a_token(data: dict[str, object], words: str) -> None:
    with pytest.raises(TokenError) as err:
        TokenTable.parse(data)
    assert words in str(err.value)
    assert SUBMIT not in str(err.value)


def test_load_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(f'[tokens]\n"{SUBMIT}" = "submitter"\n')
    os.chmod(path, 0o600)
    assert len(TokenTable.load(str(path))) == 1
    path.write_text("[tokens\n")
    with pytest.raises(TokenError, match="not valid TOML"):
        TokenTable.load(str(path))
    with pytest.raises(TokenError, match="No such file"):
        TokenTable.load(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(("metadata", "token"), [
    ((), None),
    ((("x-other", "1"),), None),
    ((("authorization", f"Bearer {SUBMIT}"),), SUBMIT),
    ((("authorization", f"bearer   {SUBMIT} "),), SUBMIT),
    ((("authorization", f"Bearer {SUBMIT}".encode()),), SUBMIT),
])
def test_bearer_header(metadata: tuple[tuple[str, str | bytes], ...], token: str | None) -> None:
    assert bearer_token(metadata) == token


@pytest.mark.parametrize("metadata", [
    (("authorization", f"Basic {SUBMIT}"),),
    (("authorization", "Bearer "),),
    (("authorization", f"Bearer {SUBMIT}"), ("authorization", f"Bearer {ADMIN}")),
])
def test_malformed_bearer_headers_are_errors(metadata: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(TokenError) as err:
        bearer_token(metadata)
    assert SUBMIT not in str(err.value)


def test_read_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {SUBMIT}\n# comment\n")
    assert read_token_file(str(path)) == SUBMIT
    path.write_text("\n")
    with pytest.raises(TokenError, match="empty"):
        read_token_file(str(path))

"""Shared helpers for the storage tests (a uniquely named module: conftest is not importable)."""

from __future__ import annotations

from raftsched.raft.messages import ConfigState, Entry

VOTERS = ConfigState(voters=frozenset({"n1", "n2", "n3"}))


def make_entries(first: int, count: int, term: int, size: int = 10) -> list[Entry]:
    return [Entry(term=term, index=first + i, data=bytes([(first + i) % 251]) * size) for i in range(count)]

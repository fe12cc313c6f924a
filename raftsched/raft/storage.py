"""The storage the core sees: read-only, with typed errors. All writes happen in the driver.

`MemoryStorage` is the in-memory implementation used by the simulation and unit tests; the RocksDB
store in `raftsched.storage` implements the same protocol and persists what a ready asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from raftsched.raft.messages import ConfigState, Entry, HardState, SnapshotMeta


class StorageError(Exception):
    """Base of the storage errors the core knows how to handle."""


class CompactedError(StorageError):
    """The index is at or below the snapshot: the entry is gone, send a snapshot instead."""


class UnavailableError(StorageError):
    """The index is beyond the last stored entry."""


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfigState]: ...

    def first_index(self) -> int:
        """The first index still held as an entry (snapshot index + 1)."""
        ...

    def last_index(self) -> int: ...

    def term(self, index: int) -> int:
        """Term of the entry at `index`; also answers for the snapshot's own index."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi); at least one when the range is non-empty, however large."""
        ...

    def snapshot_meta(self) -> SnapshotMeta: ...


def entry_size(entry: Entry) -> int:
    return len(entry.data) + 24


def limit_size(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix within `max_bytes`, but never empty when `entries` is not."""
    if max_bytes is None or not entries:
        return entries
    total = 0
    for i, entry in enumerate(entries):
        total += entry_size(entry)
        if total > max_bytes and i > 0:
            return entries[:i]
    return entries


@dataclass
class MemoryStorage:
    """Stable storage held in memory: what survives a simulated crash."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: SnapshotMeta = field(default_factory=SnapshotMeta)
    # Invariant: log[i].index == snapshot.index + 1 + i
    log: list[Entry] = field(default_factory=list)
    # The state machine's data at snapshot.index (opaque to the core; used by the simulation).
    snapshot_data: object = None

    @classmethod
    def bootstrap(cls, voters: frozenset[str], learners: frozenset[str] = frozenset()) -> MemoryStorage:
        return cls(snapshot=SnapshotMeta(0, 0, ConfigState(voters, learners)))

    def initial_state(self) -> tuple[HardState, ConfigState]:
        return self.hard_state, self.snapshot.config

    def first_index(self) -> int:
        return self.snapshot.index + 1

    def last_index(self) -> int:
        return self.snapshot.index + len(self.log)

    def term(self, index: int) -> int:
        if index == self.snapshot.index:
            return self.snapshot.term
        if index < self.snapshot.index:
            raise CompactedError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        return self.log[index - self.snapshot.index - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo <= self.snapshot.index:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        if lo >= hi:  # an empty range (a negative slice end below would count from the back)
            return []
        base = self.snapshot.index + 1
        return limit_size(self.log[lo - base : hi - base], max_bytes)

    def snapshot_meta(self) -> SnapshotMeta:
        return self.snapshot

    # --- writes, done by the driver from a ready ---

    def append(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        assert first <= self.last_index() + 1, f"gap: append {first} after {self.last_index()}"
        if first <= self.snapshot.index:
            skip = self.snapshot.index + 1 - first
            entries = list(entries)[skip:]
            if not entries:
                return
            first = entries[0].index
        del self.log[first - self.snapshot.index - 1 :]
        self.log.extend(entries)

    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state

    def apply_snapshot(self, meta: SnapshotMeta, data: object = None) -> None:
        """Replace everything up to meta.index; keep a matching suffix of the log if we have one."""
        keep: list[Entry] = []
        if self.snapshot.index < meta.index <= self.last_index() and self.term(meta.index) == meta.term:
            keep = self.log[meta.index - self.snapshot.index :]
        self.snapshot = meta
        self.snapshot_data = data
        self.log = keep

    def compact(self, index: int, term: int, config: ConfigState, data: object = None) -> None:
        """Drop entries up to `index` (already applied and captured in `data`)."""
        assert self.snapshot.index < index <= self.last_index()
        self.log = self.log[index - self.snapshot.index :]
        self.snapshot = SnapshotMeta(index, term, config)
        self.snapshot_data = data

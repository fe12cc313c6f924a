"""The core's view of the log: stable storage plus the entries not yet persisted.

Entries from `unstable_offset` on live in `unstable` until the driver persists them; they shadow
whatever storage still holds at those indexes (a conflicting suffix about to be replaced).
"""

from __future__ import annotations

from raftsched.raft.messages import Entry, SnapshotMeta
from raftsched.raft.storage import CompactedError, Storage, UnavailableError, limit_size


class RaftLog:
    def __init__(self, storage: Storage, committed: int, applied: int) -> None:
        self.storage = storage
        self.unstable: list[Entry] = []
        # Invariant: unstable[i].index == unstable_offset + i
        self.unstable_offset = storage.last_index() + 1
        self.pending_snapshot: SnapshotMeta | None = None  # received, not yet persisted
        first = storage.first_index()
        # Invariant: applied <= committed <= last_index()
        self.committed = max(committed, first - 1)
        self.applied = max(applied, first - 1)
        assert self.committed <= self.last_index(), (self.committed, self.last_index())
        self.applied = min(self.applied, self.committed)

    def __repr__(self) -> str:
        return (
            f"RaftLog(first={self.first_index()}, last={self.last_index()}, "
            f"committed={self.committed}, applied={self.applied}, unstable@{self.unstable_offset})"
        )

    # --- reads ---

    def first_index(self) -> int:
        if self.pending_snapshot is not None:
            return self.pending_snapshot.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.unstable[-1].index
        if self.pending_snapshot is not None:
            return self.pending_snapshot.index
        return self.storage.last_index()

    def stable_last_index(self) -> int:
        """The last index the driver has persisted (and that is still ours)."""
        return min(self.storage.last_index(), self.unstable_offset - 1)

    def last_term(self) -> int:
        return self.term(self.last_index())

    def term(self, index: int) -> int:
        """The term at `index`; raises CompactedError / UnavailableError when it is not held."""
        if index >= self.unstable_offset and self.unstable:
            if index > self.unstable[-1].index:
                raise UnavailableError(index)
            return self.unstable[index - self.unstable_offset].term
        snap = self.pending_snapshot
        if snap is not None:
            if index == snap.index:
                return snap.term
            raise CompactedError(index) if index < snap.index else UnavailableError(index)
        if index >= self.unstable_offset:
            raise UnavailableError(index)
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1: a candidate's log is at least as up to date as ours."""
        ours = self.last_term()
        return last_term > ours or (last_term == ours and last_index >= self.last_index())

    def entries(self, lo: int, max_bytes: int | None = None, hi: int | None = None) -> list[Entry]:
        """Entries in [lo, hi) (hi defaults to past the end); raises CompactedError below the log."""
        hi = self.last_index() + 1 if hi is None else hi
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(lo)
        out: list[Entry] = []
        if lo < self.unstable_offset:
            out = self.storage.entries(lo, min(hi, self.unstable_offset), max_bytes)
            if len(out) < min(hi, self.unstable_offset) - lo:
                return out  # cut by max_bytes
        if hi > self.unstable_offset:
            start = max(lo, self.unstable_offset) - self.unstable_offset
            out = out + self.unstable[start : hi - self.unstable_offset]
        return limit_size(out, max_bytes)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= `index` whose term is <= `term` (fast back-off, thesis §5.3)."""
        while index > 0:
            try:
                if self.term(index) <= term:
                    return index
            except CompactedError:
                return index
            except UnavailableError:
                pass
            index -= 1
        return 0

    def next_committed(self, max_bytes: int) -> list[Entry]:
        """Committed entries not yet handed out for applying."""
        if self.committed <= self.applied:
            return []
        return self.entries(self.applied + 1, max_bytes, self.committed + 1)

    # --- writes (to the in-memory view; the driver persists from the ready) ---

    def append(self, entries: list[Entry]) -> None:
        """Append entries; a first index at or below the last replaces the suffix from there."""
        if not entries:
            return
        first = entries[0].index
        assert first > self.committed, f"truncating committed entry {first} <= {self.committed}"
        if first == self.last_index() + 1 and (self.unstable or first == self.unstable_offset):
            self.unstable.extend(entries)
        elif first >= self.unstable_offset and self.unstable:
            del self.unstable[first - self.unstable_offset :]
            self.unstable.extend(entries)
        else:
            self.unstable = list(entries)
            self.unstable_offset = first

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """Index of the first entry we lack or hold with another term; 0 if all match."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def commit_to(self, index: int) -> bool:
        if index <= self.committed:
            return False
        assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
        self.committed = index
        return True

    def restore(self, snapshot: SnapshotMeta) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        self.pending_snapshot = snapshot
        self.unstable = []
        self.unstable_offset = snapshot.index + 1
        self.committed = snapshot.index
        self.applied = snapshot.index  # the driver installs the snapshot before applying more

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted the unstable entries up to `index` (if still ours at `term`)."""
        if index < self.unstable_offset or not self.match_term(index, term):
            return
        del self.unstable[: index - self.unstable_offset + 1]
        self.unstable_offset = index + 1

    def snapshot_persisted(self, snapshot: SnapshotMeta) -> None:
        if self.pending_snapshot == snapshot:
            self.pending_snapshot = None
        self.applied = max(self.applied, snapshot.index)

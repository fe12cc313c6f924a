"""`RaftStore`: the Raft log, hard state and snapshot meta in RocksDB.

The read side implements `raftsched.raft.storage.Storage` with exactly `MemoryStorage`'s answers
and errors; the write side (`save`, `compact`, `install_snapshot_meta`, `bootstrap`) is called by
the driver, each call one atomic `WriteBatch`. Every record read from disk is checksummed
(see `codec`); `verify()` checks the whole store at start-up.

Hot path: the leader reads back entries it has just written to send them to followers, so the
newest entries stay in a bounded in-memory cache and `term()` / `entries()` rarely touch RocksDB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rocksdict import ColumnFamily, WriteBatch

from raftsched.raft.messages import ConfigState, Entry, HardState, SnapshotMeta
from raftsched.raft.storage import CompactedError, UnavailableError, entry_size, limit_size
from raftsched.storage import codec
from raftsched.storage.db import RAFT_LOG, RAFT_META, NodeDB
from raftsched.storage.errors import CorruptionError, StoreError

HARD_STATE_KEY = b"hard_state"
SNAPSHOT_KEY = b"snapshot_meta"
DEFAULT_CACHE_ENTRIES = 4096
DEFAULT_CACHE_BYTES = 8 << 20  # whichever bound comes first: SubmitJobs entries can be large
_FIRST_KEY = codec.index_key(0)
_END_KEY = codec.index_key(codec.MAX_INDEX)  # exclusive bound: index 2**64-1 is never used


class RaftStore:
    """Durable Raft state of one node, with `MemoryStorage`'s semantics."""

    def __init__(self, db: NodeDB, *, cache_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if cache_entries < 1:
            raise ValueError(f"cache_entries must be at least 1, got {cache_entries}")
        self._db = db
        self._cache_limit = cache_entries
        self._hard_state = self._load_hard_state() or HardState()
        snapshot = self._load_snapshot()
        self._bootstrapped = snapshot is not None
        self._snapshot = snapshot or SnapshotMeta()
        # Invariant: snapshot.index <= last, and entries snapshot.index+1 .. last are on disk.
        self._last = max(self._snapshot.index, self._last_stored_index())
        # Invariant: the cache is empty or a contiguous run of the log ending exactly at `_last`.
        self._cache: list[Entry] = []
        self._cache_bytes = 0  # Invariant: the sum of entry_size over the cache

    # --- Storage protocol (read-only, what the core sees) -------------------------------------

    def initial_state(self) -> tuple[HardState, ConfigState]:
        return self._hard_state, self._snapshot.config

    def first_index(self) -> int:
        return self._snapshot.index + 1

    def last_index(self) -> int:
        return self._last

    def term(self, index: int) -> int:
        if index == self._snapshot.index:
            return self._snapshot.term
        if index < self._snapshot.index:
            raise CompactedError(index)
        if index > self._last:
            raise UnavailableError(index)
        cached = self._cached(index)
        return cached.term if cached is not None else self._read_entry(index).term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo <= self._snapshot.index:
            raise CompactedError(lo)
        if hi > self._last + 1:
            raise UnavailableError(hi)
        if lo >= hi:
            return []
        if self._cache and lo >= self._cache[0].index:
            base = self._cache[0].index
            return limit_size(self._cache[lo - base : hi - base], max_bytes)
        return self._read_range(lo, hi, max_bytes)

    def snapshot_meta(self) -> SnapshotMeta:
        return self._snapshot

    def hard_state(self) -> HardState:
        return self._hard_state

    # --- writes, done by the driver ----------------------------------------------------------

    def is_bootstrapped(self) -> bool:
        return self._bootstrapped

    def bootstrap(self, config: ConfigState) -> None:
        """Record the initial membership (snapshot meta at index 0, term 0) in a new data dir."""
        if self._bootstrapped or self._last > 0 or self._hard_state != HardState():
            raise StoreError(f"data directory {self._db.path} is already bootstrapped")
        meta = SnapshotMeta(index=0, term=0, config=config)
        batch = self._db.batch()
        self._stage_snapshot_meta(batch, meta)
        self._db.write(batch, sync=True)
        self._snapshot = meta
        self._bootstrapped = True

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None = None,
        *,
        sync: bool = True,
        extra: Callable[[WriteBatch], None] | None = None,
    ) -> None:
        """Persist one ready in one batch: `snapshot`, then `entries` (replacing any stored
        suffix from entries[0].index on), then `hard_state`, plus whatever `extra` stages (the
        state generation a snapshot install switches to, so both change together). With `sync`
        (the default) this returns only once the batch is on stable storage (group commit)."""
        keep = snapshot is not None and self._keeps_suffix(snapshot)
        last_before = self._last if snapshot is None or keep else snapshot.index
        floor = snapshot.index if snapshot is not None else self._snapshot.index
        new = self._check_append(entries, last_before, floor)
        batch = self._db.batch()
        if snapshot is not None:
            self._stage_snapshot(batch, snapshot, keep)
        if new:
            self._stage_entries(batch, new, last_before)
        if hard_state is not None:
            batch.put(HARD_STATE_KEY, codec.encode_hard_state(HARD_STATE_KEY, hard_state), self._meta_cf())
        if extra is not None:
            extra(batch)
        if batch.is_empty():
            return
        self._db.write(batch, sync=sync)
        # Memory follows disk only once the write has succeeded.
        if snapshot is not None:
            self._apply_snapshot(snapshot, keep)
        if new:
            self._append_cached(new)
        if hard_state is not None:
            self._hard_state = hard_state

    def sync(self) -> None:
        """Make every earlier `save(..., sync=False)` durable; safe to run in a worker thread
        (it makes only OS calls, see NodeDB.sync_wal_files)."""
        self._db.sync_wal_files()

    def compact(self, index: int, term: int, config: ConfigState) -> None:
        """Record a snapshot at `index` (already applied) and drop the entries up to it."""
        if not self._snapshot.index < index <= self._last:
            raise AssertionError(f"compact({index}) outside ({self._snapshot.index}, {self._last}]")
        if self.term(index) != term:
            raise AssertionError(f"compact({index}, term={term}): the entry there has term {self.term(index)}")
        meta = SnapshotMeta(index=index, term=term, config=config)
        batch = self._db.batch()
        self._stage_snapshot(batch, meta, keep_suffix=True)
        self._db.write(batch, sync=True)
        self._apply_snapshot(meta, keep_suffix=True)

    def install_snapshot_meta(self, meta: SnapshotMeta) -> None:
        """After a snapshot install: set its meta and drop the log, keeping only a suffix that
        matches the snapshot (same rule as `MemoryStorage.apply_snapshot`)."""
        self.save(None, (), meta)

    # --- start-up check ----------------------------------------------------------------------

    def verify(self) -> None:
        """Check every checksum, that the log is contiguous from first_index to last_index, that
        terms never decrease, and that the metadata agrees. Raises CorruptionError; repairs nothing."""
        hard_state = self._load_hard_state() or HardState()
        snapshot = self._load_snapshot() or SnapshotMeta()
        last = self._verify_log(snapshot)
        if last != self._last:
            raise CorruptionError(f"{RAFT_LOG}: last index on disk is {last}, this store expected {self._last}")
        if hard_state.commit > last:
            raise CorruptionError(
                f"{RAFT_META}: hard state commit {hard_state.commit} is beyond the last log index {last}"
            )

    def _verify_log(self, snapshot: SnapshotMeta) -> int:
        expected, prev_term = snapshot.index + 1, snapshot.term
        it = self._db.cf(RAFT_LOG).iter()
        try:
            it.seek_to_first()
            while it.valid():
                entry = _checked_entry(snapshot, expected, prev_term, it.key(), it.value())
                expected, prev_term = expected + 1, entry.term
                it.next()
            it.status()
        finally:
            del it  # a traceback must not keep the iterator, and so the database, open
        return expected - 1

    # --- loading -----------------------------------------------------------------------------

    def _meta_cf(self) -> ColumnFamily:
        return self._db.handle(RAFT_META)

    def _load_hard_state(self) -> HardState | None:
        raw = self._db.cf(RAFT_META).get(HARD_STATE_KEY)
        return None if raw is None else codec.decode_hard_state(RAFT_META, HARD_STATE_KEY, raw)

    def _load_snapshot(self) -> SnapshotMeta | None:
        raw = self._db.cf(RAFT_META).get(SNAPSHOT_KEY)
        return None if raw is None else codec.decode_snapshot_meta(RAFT_META, SNAPSHOT_KEY, raw)

    def _last_stored_index(self) -> int:
        it = self._db.cf(RAFT_LOG).iter()
        it.seek_to_last()
        return codec.key_index(RAFT_LOG, it.key()) if it.valid() else 0

    # --- reads from disk ---------------------------------------------------------------------

    def _cached(self, index: int) -> Entry | None:
        if self._cache and index >= self._cache[0].index:
            return self._cache[index - self._cache[0].index]
        return None

    def _read_entry(self, index: int) -> Entry:
        key = codec.index_key(index)
        raw = self._db.cf(RAFT_LOG).get(key)
        if raw is None:
            raise CorruptionError(
                f"{RAFT_LOG}: entry at index {index} is missing (log should hold {self.first_index()}..{self._last})"
            )
        return codec.decode_entry(RAFT_LOG, key, raw)

    def _read_range(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        """Entries [lo, hi) from disk, stopping as `limit_size` would (so we never read more)."""
        out: list[Entry] = []
        total = 0
        it = self._db.cf(RAFT_LOG).iter()
        try:
            it.seek(codec.index_key(lo))
            for index in range(lo, hi):
                key = it.key() if it.valid() else None
                if key is None or key != codec.index_key(index):
                    it.status()
                    raise CorruptionError(f"{RAFT_LOG}: entry at index {index} is missing ({_found(key)})")
                entry = codec.decode_entry(RAFT_LOG, key, it.value())
                total += entry_size(entry)
                if max_bytes is not None and total > max_bytes and out:
                    break
                out.append(entry)
                it.next()
        finally:
            del it  # a traceback must not keep the iterator, and so the database, open
        return out

    # --- staging writes (nothing in memory changes until the batch is written) ---------------

    def _keeps_suffix(self, meta: SnapshotMeta) -> bool:
        return self._snapshot.index < meta.index <= self._last and self.term(meta.index) == meta.term

    def _check_append(self, entries: Sequence[Entry], last: int, floor: int) -> list[Entry]:
        """The entries to write: contiguous, no gap after `last`, minus any at or below `floor`."""
        if not entries:
            return []
        first = entries[0].index
        if first > last + 1:
            raise AssertionError(f"gap: append {first} after {last}")
        for offset, entry in enumerate(entries):
            if entry.index != first + offset:
                raise AssertionError(f"entries not contiguous: {entry.index} at position {offset} after {first}")
        return list(entries[max(0, floor + 1 - first) :])

    def _stage_snapshot_meta(self, batch: WriteBatch, meta: SnapshotMeta) -> None:
        batch.put(SNAPSHOT_KEY, codec.encode_snapshot_meta(SNAPSHOT_KEY, meta), self._meta_cf())

    def _stage_snapshot(self, batch: WriteBatch, meta: SnapshotMeta, keep_suffix: bool) -> None:
        self._stage_snapshot_meta(batch, meta)
        end = codec.index_key(meta.index + 1) if keep_suffix else _END_KEY
        batch.delete_range(_FIRST_KEY, end, self._db.handle(RAFT_LOG))

    def _stage_entries(self, batch: WriteBatch, entries: list[Entry], last: int) -> None:
        log = self._db.handle(RAFT_LOG)
        first = entries[0].index
        if first <= last:  # conflict: the new entries replace the stored suffix
            batch.delete_range(codec.index_key(first), codec.index_key(last + 1), log)
        for entry in entries:
            batch.put(codec.index_key(entry.index), codec.encode_entry(entry), log)

    # --- memory, after a successful write ----------------------------------------------------

    def _apply_snapshot(self, meta: SnapshotMeta, keep_suffix: bool) -> None:
        self._snapshot = meta
        self._bootstrapped = True
        if not keep_suffix:
            self._last = meta.index
            self._clear_cache()
        elif self._cache and self._cache[0].index <= meta.index:
            count = meta.index + 1 - self._cache[0].index
            self._drop_cached(count, sum(entry_size(e) for e in self._cache[:count]))

    def _append_cached(self, entries: list[Entry]) -> None:
        cache, first = self._cache, entries[0].index
        if cache and cache[0].index < first <= cache[-1].index + 1:
            cut = first - cache[0].index  # conflict truncation (nothing when appending)
            self._cache_bytes -= sum(entry_size(e) for e in cache[cut:])
            del cache[cut:]
        else:
            self._clear_cache()
        cache.extend(entries)
        self._cache_bytes += sum(entry_size(e) for e in entries)
        self._last = entries[-1].index
        drop = max(0, len(cache) - self._cache_limit)
        freed = sum(entry_size(e) for e in cache[:drop])
        while drop < len(cache) - 1 and self._cache_bytes - freed > DEFAULT_CACHE_BYTES:
            freed += entry_size(cache[drop])
            drop += 1
        self._drop_cached(drop, freed)

    def _drop_cached(self, count: int, size: int) -> None:
        del self._cache[:count]
        self._cache_bytes -= size

    def _clear_cache(self) -> None:
        self._cache = []
        self._cache_bytes = 0


def _found(key: bytes | None) -> str:
    return "no later entry stored" if key is None else f"next stored key is {key.hex()}"


def _checked_entry(snapshot: SnapshotMeta, expected: int, prev_term: int, key: bytes, value: bytes) -> Entry:
    """Decode one record met by `verify()`, checking it continues the log without a gap or a
    decreasing term."""
    index = codec.key_index(RAFT_LOG, key)
    if index != expected:
        raise CorruptionError(_gap_message(snapshot, expected, index))
    entry = codec.decode_entry(RAFT_LOG, key, value)
    if entry.term < prev_term:
        raise CorruptionError(f"{RAFT_LOG}: term decreases at index {index}: {entry.term} after {prev_term}")
    return entry


def _gap_message(snapshot: SnapshotMeta, expected: int, index: int) -> str:
    if index < expected:  # keys are sorted, so only the first key can be below first_index
        return f"{RAFT_LOG}: entry at index {index} is at or below the snapshot index {snapshot.index}"
    return (
        f"{RAFT_LOG}: entries are not contiguous: expected index {expected}, found {index} "
        f"(log starts at first_index {snapshot.index + 1})"
    )

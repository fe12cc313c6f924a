"""RaftStore scenarios: round trips across reopen, conflict truncation, compaction, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_helpers import VOTERS, make_entries

from raftsched.raft.messages import ConfigState, Entry, EntryType, HardState, SnapshotMeta
from raftsched.raft.storage import CompactedError, MemoryStorage, UnavailableError
from raftsched.storage import NodeDB, RaftStore, StoreError


def reopen(data_dir: Path, db: NodeDB, **kwargs: int) -> tuple[NodeDB, RaftStore]:
    db.close()
    new_db = NodeDB(data_dir)
    return new_db, RaftStore(new_db, **kwargs)


def test_fresh_store_is_empty_and_not_bootstrapped(db: NodeDB) -> None:
    store = RaftStore(db)
    assert not store.is_bootstrapped()
    assert store.initial_state() == (HardState(), ConfigState())
    assert (store.first_index(), store.last_index(), store.term(0)) == (1, 0, 0)
    assert store.entries(1, 1) == []


def test_bootstrap_records_membership_and_refuses_twice(data_dir: Path, db: NodeDB) -> None:
    store = RaftStore(db)
    store.bootstrap(VOTERS)
    assert store.is_bootstrapped()
    assert store.snapshot_meta() == SnapshotMeta(0, 0, VOTERS)
    with pytest.raises(StoreError, match="already bootstrapped"):
        store.bootstrap(VOTERS)
    db, store = reopen(data_dir, db)
    try:
        assert store.is_bootstrapped()
        assert store.initial_state() == (HardState(), VOTERS)
    finally:
        db.close()


def test_round_trip_after_reopen(data_dir: Path, db: NodeDB, store: RaftStore) -> None:
    entries = [
        Entry(term=1, index=1, type=EntryType.NOOP),
        Entry(term=1, index=2, data=b"submit job"),
        Entry(term=2, index=3, type=EntryType.CONFIG, data=b"\x00\xff" * 50),
    ]
    hard_state = HardState(term=2, vote="n2", commit=2)
    store.save(hard_state, entries)
    db, reopened = reopen(data_dir, db)
    try:
        assert reopened.initial_state() == (hard_state, VOTERS)
        assert (reopened.first_index(), reopened.last_index()) == (1, 3)
        assert reopened.entries(1, 4) == entries
        assert [reopened.term(i) for i in range(4)] == [0, 1, 1, 2]
        assert reopened.snapshot_meta() == SnapshotMeta(0, 0, VOTERS)
        reopened.verify()
    finally:
        db.close()


def test_hard_state_alone_and_entries_alone(store: RaftStore) -> None:
    store.save(HardState(term=3, vote="n1"), [])
    store.save(None, make_entries(1, 3, term=3))
    assert store.initial_state()[0] == HardState(term=3, vote="n1")
    assert store.last_index() == 3


def test_conflict_truncation_replaces_suffix(data_dir: Path, db: NodeDB, store: RaftStore) -> None:
    store.save(HardState(term=1), make_entries(1, 10, term=1))
    replacement = make_entries(6, 2, term=2, size=3)
    store.save(HardState(term=2), replacement)
    assert store.last_index() == 7
    assert store.entries(6, 8) == replacement
    with pytest.raises(UnavailableError):
        store.term(8)
    db, reopened = reopen(data_dir, db)
    try:
        assert reopened.last_index() == 7
        assert reopened.entries(1, 8) == make_entries(1, 5, term=1) + replacement
        reopened.verify()
    finally:
        db.close()


def test_cache_is_bounded_and_correct_after_truncation(data_dir: Path, db: NodeDB) -> None:
    store = RaftStore(db, cache_entries=4)
    store.bootstrap(VOTERS)
    store.save(None, make_entries(1, 10, term=1))
    store.save(None, make_entries(3, 2, term=2))  # truncates below the cached window
    store.save(None, make_entries(5, 3, term=2))
    store.save(None, make_entries(7, 1, term=3))  # truncates inside the cached window
    expected = make_entries(1, 2, term=1) + make_entries(3, 4, term=2) + make_entries(7, 1, term=3)
    assert store.entries(1, 8) == expected
    assert [store.term(i) for i in range(1, 8)] == [e.term for e in expected]
    assert len(store._cache) <= 4


def test_append_with_gap_is_a_bug(store: RaftStore) -> None:
    store.save(None, make_entries(1, 3, term=1))
    with pytest.raises(AssertionError, match="gap"):
        store.save(None, make_entries(5, 1, term=1))
    assert store.last_index() == 3


def test_compaction(data_dir: Path, db: NodeDB, store: RaftStore) -> None:
    store.save(HardState(term=2, commit=10), make_entries(1, 10, term=2))
    config = ConfigState(voters=frozenset({"n1", "n2"}), learners=frozenset({"n4"}))
    store.compact(6, 2, config)
    assert (store.first_index(), store.last_index(), store.term(6)) == (7, 10, 2)
    with pytest.raises(CompactedError):
        store.term(5)
    with pytest.raises(CompactedError):
        store.entries(6, 8)
    db, reopened = reopen(data_dir, db)
    try:
        assert reopened.snapshot_meta() == SnapshotMeta(6, 2, config)
        assert reopened.initial_state()[1] == config
        assert reopened.entries(7, 11) == make_entries(7, 4, term=2)
        with pytest.raises(CompactedError):
            reopened.entries(5, 8)
        reopened.verify()
    finally:
        db.close()


def test_compact_everything_then_append(data_dir: Path, db: NodeDB, store: RaftStore) -> None:
    store.save(None, make_entries(1, 4, term=1))
    store.compact(4, 1, VOTERS)
    assert (store.first_index(), store.last_index()) == (5, 4)
    store.save(None, make_entries(3, 4, term=1))  # entries at or below the snapshot are skipped
    assert store.entries(5, 7) == make_entries(5, 2, term=1)
    db, reopened = reopen(data_dir, db)
    try:
        assert (reopened.first_index(), reopened.last_index()) == (5, 6)
        reopened.verify()
    finally:
        db.close()


def test_install_snapshot_drops_a_mismatching_log(data_dir: Path, db: NodeDB, store: RaftStore) -> None:
    store.save(None, make_entries(1, 5, term=1))
    meta = SnapshotMeta(8, 3, VOTERS)
    store.install_snapshot_meta(meta)
    assert (store.first_index(), store.last_index(), store.term(8)) == (9, 8, 3)
    db, reopened = reopen(data_dir, db)
    try:
        assert reopened.snapshot_meta() == meta
        assert reopened.last_index() == 8
        reopened.verify()
    finally:
        db.close()


def test_install_snapshot_keeps_a_matching_suffix_like_memory_storage(store: RaftStore) -> None:
    model = MemoryStorage.bootstrap(VOTERS.voters)
    store.save(None, make_entries(1, 6, term=1))
    model.append(make_entries(1, 6, term=1))
    meta = SnapshotMeta(4, 1, VOTERS)
    store.install_snapshot_meta(meta)
    model.apply_snapshot(meta)
    assert (store.first_index(), store.last_index()) == (model.first_index(), model.last_index()) == (5, 6)
    assert store.entries(5, 7) == model.entries(5, 7)


def test_snapshot_entries_and_hard_state_in_one_save(store: RaftStore) -> None:
    store.save(None, make_entries(1, 3, term=1))
    store.save(HardState(term=4, commit=12), make_entries(11, 2, term=4), SnapshotMeta(10, 4, VOTERS))
    assert (store.first_index(), store.last_index()) == (11, 12)
    assert store.initial_state()[0] == HardState(term=4, commit=12)
    store.verify()


@pytest.mark.parametrize("cache_entries", [1, 16_384])  # 1: reads come from disk
def test_entries_max_bytes_matches_memory_storage(db: NodeDB, cache_entries: int) -> None:
    store = RaftStore(db, cache_entries=cache_entries)
    model = MemoryStorage.bootstrap(VOTERS.voters)
    store.bootstrap(VOTERS)
    entries = [Entry(term=1, index=i, data=b"x" * (10 * i)) for i in range(1, 8)]
    store.save(None, entries)
    model.append(entries)
    # Every limit up to the whole log's size, so each exact cumulative size is hit.
    for max_bytes in [None, *range(0, 460)]:
        for lo in range(1, 8):
            for hi in range(lo, 9):
                expected = model.entries(lo, hi, max_bytes)
                assert store.entries(lo, hi, max_bytes) == expected, (lo, hi, max_bytes)
    with pytest.raises(UnavailableError):
        store.entries(1, 9)

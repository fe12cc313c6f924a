"""Damaged stores are refused with a message naming the column family, the key and the fault."""

from __future__ import annotations

import pytest
from storage_helpers import make_entries

from raftsched.raft.messages import HardState
from raftsched.storage import RAFT_LOG, RAFT_META, CorruptionError, NodeDB, RaftStore
from raftsched.storage.codec import index_key
from raftsched.storage.raft_store import HARD_STATE_KEY, SNAPSHOT_KEY


def flip_byte(db: NodeDB, cf: str, key: bytes, offset: int) -> None:
    view = db.cf(cf)
    raw = view.get(key)
    assert raw is not None, key
    value = bytearray(raw)
    value[offset] ^= 0x40
    view[key] = bytes(value)


def filled(db: NodeDB, store: RaftStore, count: int = 10) -> RaftStore:
    store.save(HardState(term=2, commit=count), make_entries(1, count, term=2))
    return RaftStore(db)  # a fresh store: nothing cached, every read goes to disk


@pytest.mark.parametrize("offset", [0, 4, 6, 20])  # crc, format, term, data
def test_flipped_entry_byte_is_reported_by_reads_and_verify(db: NodeDB, store: RaftStore, offset: int) -> None:
    fresh = filled(db, store)
    flip_byte(db, RAFT_LOG, index_key(5), offset)
    message = r"raft_log: entry at index 5 \(key 0000000000000005\): checksum mismatch"
    with pytest.raises(CorruptionError, match=message):
        fresh.entries(1, 11)
    with pytest.raises(CorruptionError, match=message):
        fresh.term(5)
    with pytest.raises(CorruptionError, match=message):
        fresh.verify()
    assert fresh.entries(6, 11) == make_entries(6, 5, term=2)  # other entries still readable


def test_entry_moved_to_another_key_fails_its_checksum(db: NodeDB, store: RaftStore) -> None:
    fresh = filled(db, store)
    view = db.cf(RAFT_LOG)
    view[index_key(4)] = view[index_key(3)]
    with pytest.raises(CorruptionError, match=r"index 4 .*checksum mismatch"):
        fresh.verify()


def test_truncated_value_is_reported(db: NodeDB, store: RaftStore) -> None:
    fresh = filled(db, store)
    db.cf(RAFT_LOG)[index_key(2)] = b"\x00\x01"
    with pytest.raises(CorruptionError, match=r"index 2 .*shorter than the header"):
        fresh.entries(2, 3)


def test_missing_middle_entry_is_detected(db: NodeDB, store: RaftStore) -> None:
    fresh = filled(db, store)
    del db.cf(RAFT_LOG)[index_key(6)]
    with pytest.raises(CorruptionError, match="expected index 6, found 7"):
        fresh.verify()
    with pytest.raises(CorruptionError, match="entry at index 6 is missing"):
        fresh.entries(5, 8)
    with pytest.raises(CorruptionError, match="entry at index 6 is missing"):
        fresh.term(6)


def test_missing_last_entry_is_detected(db: NodeDB, store: RaftStore) -> None:
    fresh = filled(db, store)
    del db.cf(RAFT_LOG)[index_key(10)]
    with pytest.raises(CorruptionError, match="last index on disk is 9, this store expected 10"):
        fresh.verify()


def test_decreasing_term_is_detected(db: NodeDB, store: RaftStore) -> None:
    store.save(None, make_entries(1, 3, term=3))
    store.save(None, make_entries(4, 1, term=2))  # a bug upstream, but the store must notice
    with pytest.raises(CorruptionError, match="term decreases at index 4: 2 after 3"):
        RaftStore(db).verify()


def test_commit_beyond_log_is_detected(db: NodeDB, store: RaftStore) -> None:
    store.save(HardState(term=1, commit=7), make_entries(1, 3, term=1))
    with pytest.raises(CorruptionError, match="commit 7 is beyond the last log index 3"):
        store.verify()


@pytest.mark.parametrize("key", [HARD_STATE_KEY, SNAPSHOT_KEY])
def test_corrupt_metadata_refuses_to_open(db: NodeDB, store: RaftStore, key: bytes) -> None:
    store.save(HardState(term=1), [])
    flip_byte(db, RAFT_META, key, 8)
    with pytest.raises(CorruptionError, match=f"raft_meta: record '{key.decode()}': checksum mismatch"):
        RaftStore(db)


def test_metadata_with_a_valid_checksum_but_bad_fields_is_refused(db: NodeDB, store: RaftStore) -> None:
    from raftsched.storage.codec import encode_record

    db.cf(RAFT_META)[HARD_STATE_KEY] = encode_record(HARD_STATE_KEY, {"term": "two", "vote": "", "commit": 0})
    with pytest.raises(CorruptionError, match="hard state: field 'term' must be a non-negative integer"):
        RaftStore(db)

"""On-disk encodings of the Raft log and metadata: explicit, versioned, checksummed. Never pickle.

Log entry (column family `raft_log`):
    key   = index as u64 big-endian (so RocksDB's bytewise order is index order)
    value = crc32 u32 | format u8 | term u64 | type u8 | data
The crc32 covers the key and everything after the crc, so a value copied to the wrong key is caught.

Metadata record (column family `raft_meta`; hard state, snapshot meta, format version):
    value = crc32 u32 | format u8 | JSON object (UTF-8)
again with the crc32 over key + the rest. These records are small and rare; JSON keeps them readable.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from raftsched.raft.messages import ConfigState, Entry, EntryType, HardState, SnapshotMeta
from raftsched.storage.errors import CorruptionError

ENTRY_FORMAT = 1
META_FORMAT = 1

_KEY = struct.Struct(">Q")
_CRC = struct.Struct(">I")
_ENTRY_BODY = struct.Struct(">BQB")  # format, term, type
_ENTRY_HEADER = _CRC.size + _ENTRY_BODY.size
_ENTRY_TYPES = frozenset(t.value for t in EntryType)
MAX_INDEX = 2**64 - 1


def index_key(index: int) -> bytes:
    return _KEY.pack(index)


def key_index(cf: str, key: bytes) -> int:
    if len(key) != _KEY.size:
        raise CorruptionError(f"{cf}: key {key.hex()} is {len(key)} bytes, expected {_KEY.size}")
    index: int = _KEY.unpack(key)[0]
    return index


def _checksum(key: bytes, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(key))


def encode_entry(entry: Entry) -> bytes:
    key = index_key(entry.index)
    body = _ENTRY_BODY.pack(ENTRY_FORMAT, entry.term, entry.type) + entry.data
    return _CRC.pack(_checksum(key, body)) + body


def decode_entry(cf: str, key: bytes, value: bytes) -> Entry:
    index = key_index(cf, key)
    where = f"{cf}: entry at index {index} (key {key.hex()})"
    if len(value) < _ENTRY_HEADER:
        raise CorruptionError(f"{where}: value is {len(value)} bytes, shorter than the header")
    _check_crc(where, key, value)
    fmt, term, kind = _ENTRY_BODY.unpack_from(value, _CRC.size)
    if fmt != ENTRY_FORMAT:
        raise CorruptionError(f"{where}: unknown entry format {fmt} (this build reads {ENTRY_FORMAT})")
    if kind not in _ENTRY_TYPES:
        raise CorruptionError(f"{where}: unknown entry type {kind}")
    return Entry(term=term, index=index, type=EntryType(kind), data=value[_ENTRY_HEADER:])


def _check_crc(where: str, key: bytes, value: bytes) -> None:
    stored: int = _CRC.unpack_from(value)[0]
    computed = _checksum(key, value[_CRC.size :])
    if stored != computed:
        raise CorruptionError(f"{where}: checksum mismatch (stored {stored:08x}, computed {computed:08x})")


# --- metadata records ---------------------------------------------------------------------------


def encode_record(key: bytes, fields: dict[str, Any]) -> bytes:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    body = bytes([META_FORMAT]) + text.encode()
    return _CRC.pack(_checksum(key, body)) + body


def decode_record(cf: str, key: bytes, value: bytes) -> dict[str, Any]:
    where = f"{cf}: record {key.decode(errors='backslashreplace')!r}"
    if len(value) < _CRC.size + 1:
        raise CorruptionError(f"{where}: value is {len(value)} bytes, shorter than the header")
    _check_crc(where, key, value)
    if value[_CRC.size] != META_FORMAT:
        raise CorruptionError(f"{where}: unknown record format {value[_CRC.size]}")
    try:
        fields = json.loads(value[_CRC.size + 1 :].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptionError(f"{where}: undecodable JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise CorruptionError(f"{where}: expected a JSON object, found {type(fields).__name__}")
    return fields


def _int_field(where: str, fields: dict[str, Any], name: str) -> int:
    value = fields.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CorruptionError(f"{where}: field {name!r} must be a non-negative integer, found {value!r}")
    return value


def _str_field(where: str, fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str):
        raise CorruptionError(f"{where}: field {name!r} must be a string, found {value!r}")
    return value


def _str_set_field(where: str, fields: dict[str, Any], name: str) -> frozenset[str]:
    value = fields.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CorruptionError(f"{where}: field {name!r} must be a list of strings, found {value!r}")
    return frozenset(value)


def encode_hard_state(key: bytes, hs: HardState) -> bytes:
    return encode_record(key, {"term": hs.term, "vote": hs.vote, "commit": hs.commit})


def decode_hard_state(cf: str, key: bytes, value: bytes) -> HardState:
    fields = decode_record(cf, key, value)
    where = f"{cf}: hard state"
    return HardState(
        term=_int_field(where, fields, "term"),
        vote=_str_field(where, fields, "vote"),
        commit=_int_field(where, fields, "commit"),
    )


def encode_snapshot_meta(key: bytes, meta: SnapshotMeta) -> bytes:
    return encode_record(
        key,
        {
            "index": meta.index,
            "term": meta.term,
            "voters": sorted(meta.config.voters),
            "learners": sorted(meta.config.learners),
        },
    )


def decode_snapshot_meta(cf: str, key: bytes, value: bytes) -> SnapshotMeta:
    fields = decode_record(cf, key, value)
    where = f"{cf}: snapshot meta"
    config = ConfigState(
        voters=_str_set_field(where, fields, "voters"),
        learners=_str_set_field(where, fields, "learners"),
    )
    return SnapshotMeta(index=_int_field(where, fields, "index"), term=_int_field(where, fields, "term"), config=config)


def encode_format_version(key: bytes, version: int) -> bytes:
    return encode_record(key, {"version": version})


def decode_format_version(cf: str, key: bytes, value: bytes) -> int:
    return _int_field(f"{cf}: format version", decode_record(cf, key, value), "version")

"""The backup file of `raftsched snapshot save`: a consistent state-machine snapshot plus the Raft
metadata needed to seed a new cluster from it.

Format 2 (this version writes it) is a state snapshot bundle (`raftsched.storage.bundle`: the SST
files of the state families) whose trailer `info` holds the header below with `"kind": "backup"`.

Format 1 (raftsched 0.1; still restored, then migrated) was one blob:
    magic    8 bytes  b"RSCHBKUP"
    version  u16      BACKUP_FORMAT
    hlen     u32      length of the header
    header   JSON     {cluster_id, node, index, term, created_ms, voters, learners, addresses}
    dlen     u64      length of the data
    data     bytes    SchedulerState.snapshot() at `index`
    crc32    u32      over everything before it
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"RSCHBKUP"
BACKUP_FORMAT = 2
V1_FORMAT = 1
_PREFIX = struct.Struct(">8sHI")
_DLEN = struct.Struct(">Q")
_CRC = struct.Struct(">I")


class BackupError(ValueError):
    """The backup file is not one we can restore: it says what is wrong."""


@dataclass(frozen=True, slots=True)
class BackupHeader:
    cluster_id: str
    node: str
    index: int
    term: int
    created_ms: int
    voters: list[str] = field(default_factory=list)
    learners: list[str] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)


def header_info(header: BackupHeader) -> dict[str, object]:
    """The header as a bundle trailer's `info` (format 2)."""
    return {"kind": "backup", "backup_format": BACKUP_FORMAT, **_fields(header)}


def header_from_info(info: dict[str, object]) -> BackupHeader:
    if info.get("kind") != "backup":
        raise BackupError("this state snapshot is not a backup (no backup header in its trailer)")
    fmt = info.get("backup_format")
    if fmt != BACKUP_FORMAT:
        raise BackupError(f"backup format version {fmt}; this raftsched reads versions "
                          f"{V1_FORMAT} and {BACKUP_FORMAT}")
    fields = {k: v for k, v in info.items() if k not in ("kind", "backup_format")}
    try:
        return BackupHeader(**fields)  # type: ignore[arg-type]
    except TypeError as err:
        raise BackupError(f"unreadable backup header: {err}") from None


def _fields(header: BackupHeader) -> dict[str, object]:
    return {
        "cluster_id": header.cluster_id,
        "node": header.node,
        "index": header.index,
        "term": header.term,
        "created_ms": header.created_ms,
        "voters": header.voters,
        "learners": header.learners,
        "addresses": header.addresses,
    }


def encode_backup(header: BackupHeader, data: bytes) -> bytes:
    """A format-1 backup (kept to test that this version still restores them)."""
    raw_header = json.dumps(_fields(header), sort_keys=True).encode()
    body = _PREFIX.pack(MAGIC, V1_FORMAT, len(raw_header)) + raw_header + _DLEN.pack(len(data)) + data
    return body + _CRC.pack(zlib.crc32(body))


def decode_backup(blob: bytes) -> tuple[BackupHeader, bytes]:
    """A format-1 backup: its header and its state records blob (`raftsched.state.snapshot`)."""
    if len(blob) < _PREFIX.size + _DLEN.size + _CRC.size:
        raise BackupError(f"file is {len(blob)} bytes: too short to be a raftsched backup (truncated?)")
    magic, version, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise BackupError("not a raftsched backup (bad magic bytes)")
    if version != V1_FORMAT:
        raise BackupError(f"backup format version {version}; this raftsched reads versions "
                          f"{V1_FORMAT} and {BACKUP_FORMAT}")
    dlen_at = _PREFIX.size + hlen
    if dlen_at + _DLEN.size > len(blob):
        raise BackupError("the file ends inside the header: it is truncated")
    (dlen,) = _DLEN.unpack_from(blob, dlen_at)
    end = dlen_at + _DLEN.size + dlen
    if end + _CRC.size != len(blob):
        raise BackupError(f"the file is {len(blob)} bytes but its header says {end + _CRC.size}: truncated or padded")
    (crc,) = _CRC.unpack_from(blob, end)
    if zlib.crc32(blob[:end]) != crc:
        raise BackupError("checksum mismatch: the backup is corrupted")
    try:
        fields = json.loads(blob[_PREFIX.size : dlen_at])
        header = BackupHeader(**fields)
    except (ValueError, TypeError) as err:
        raise BackupError(f"unreadable backup header: {err}") from None
    return header, blob[dlen_at + _DLEN.size : end]

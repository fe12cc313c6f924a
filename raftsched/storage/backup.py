"""The backup file of `raftsched snapshot save`: a consistent state-machine snapshot plus the Raft
metadata needed to seed a new cluster from it.

Layout (explicit and versioned; never pickle):
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
BACKUP_FORMAT = 1
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


def encode_backup(header: BackupHeader, data: bytes) -> bytes:
    raw_header = json.dumps(
        {
            "cluster_id": header.cluster_id,
            "node": header.node,
            "index": header.index,
            "term": header.term,
            "created_ms": header.created_ms,
            "voters": header.voters,
            "learners": header.learners,
            "addresses": header.addresses,
        },
        sort_keys=True,
    ).encode()
    body = _PREFIX.pack(MAGIC, BACKUP_FORMAT, len(raw_header)) + raw_header + _DLEN.pack(len(data)) + data
    return body + _CRC.pack(zlib.crc32(body))


def decode_backup(blob: bytes) -> tuple[BackupHeader, bytes]:
    if len(blob) < _PREFIX.size + _DLEN.size + _CRC.size:
        raise BackupError(f"file is {len(blob)} bytes: too short to be a raftsched backup (truncated?)")
    magic, version, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise BackupError("not a raftsched backup (bad magic bytes)")
    if version != BACKUP_FORMAT:
        raise BackupError(f"backup format version {version}; this raftsched reads version {BACKUP_FORMAT}")
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

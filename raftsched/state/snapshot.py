"""The state machine's snapshot format: every sm_* column family, versioned and checksummed.

    magic  b"RSSM"          4 bytes
    format u32 (= 1)
    count  u32              number of column families, then for each: u16 length + name (utf-8)
    record u8 family index, u32 key length, u32 value length, key, value   (repeated)
    end    u8 0xFF
    digest blake2b-128 over everything before it

Big-endian, length-prefixed, never pickle: a snapshot can be read by any later version that knows
format 1, and a corrupt one is refused before anything is discarded.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator

from raftsched.storage.errors import CorruptionError

MAGIC = b"RSSM"
FORMAT = 1
END = 0xFF
DIGEST_BYTES = 16
_RECORD = struct.Struct(">BII")


class SnapshotError(CorruptionError):
    """The snapshot bytes are truncated, damaged, or of a format this node does not know."""


Record = tuple[str, bytes, bytes]  # (column family, key, value)


def encode(families: list[str], records: Iterable[Record]) -> bytes:
    out = bytearray(MAGIC)
    out += struct.pack(">II", FORMAT, len(families))
    for name in families:
        raw = name.encode()
        out += struct.pack(">H", len(raw)) + raw
    index = {name: i for i, name in enumerate(families)}
    for family, key, value in records:
        out += _RECORD.pack(index[family], len(key), len(value))
        out += key
        out += value
    out.append(END)
    out += hashlib.blake2b(bytes(out), digest_size=DIGEST_BYTES).digest()
    return bytes(out)


def decode(data: bytes, known: list[str]) -> list[Record]:
    """All records, after checking the digest, the format and the family names (all in `known`)."""
    if len(data) < len(MAGIC) + 8 + 1 + DIGEST_BYTES or data[:4] != MAGIC:
        raise SnapshotError("state snapshot: not a raftsched state snapshot (bad magic or too short)")
    body, digest = data[:-DIGEST_BYTES], data[-DIGEST_BYTES:]
    if hashlib.blake2b(body, digest_size=DIGEST_BYTES).digest() != digest:
        raise SnapshotError("state snapshot: checksum mismatch")
    fmt, count = struct.unpack_from(">II", body, 4)
    if fmt != FORMAT:
        raise SnapshotError(f"state snapshot: format {fmt} is unknown (this node reads {FORMAT})")
    try:
        return list(_records(body, count, known))
    except (struct.error, UnicodeDecodeError, IndexError) as err:
        raise SnapshotError(f"state snapshot: malformed: {err}") from err


def _records(body: bytes, count: int, known: list[str]) -> Iterator[Record]:
    pos = 12
    families: list[str] = []
    for _ in range(count):
        (length,) = struct.unpack_from(">H", body, pos)
        families.append(body[pos + 2 : pos + 2 + length].decode())
        pos += 2 + length
    unknown = set(families) - set(known)
    if unknown:
        raise SnapshotError(f"state snapshot: unknown column families {sorted(unknown)}")
    while body[pos] != END:
        family, klen, vlen = _RECORD.unpack_from(body, pos)
        pos += _RECORD.size
        if pos + klen + vlen > len(body) - 1:
            raise SnapshotError("state snapshot: a record runs past the end")
        yield families[family], body[pos : pos + klen], body[pos + klen : pos + klen + vlen]
        pos += klen + vlen
    if pos != len(body) - 1:
        raise SnapshotError("state snapshot: bytes after the end marker")

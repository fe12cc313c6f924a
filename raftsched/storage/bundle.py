"""A state snapshot as one file: the SST files of the state families back to back, then a trailer.

    family data   the SST file of each non-empty family, in trailer order
    trailer       JSON {"format": 2, "state_format": F, "index": I,
                        "families": [{"name", "offset", "size", "blake2b"}], "info": {...}}
    tlen          u32 big-endian, the trailer's length
    digest        blake2b-128 of the trailer
    magic         b"RSSNAP02"

The trailer is at the end so that a snapshot can be written in one pass and its `info` (who took a
backup, of which cluster) rewritten without copying the data. The same file is what InstallSnapshot
streams to a follower and what `raftsched snapshot save` writes. Nothing is trusted before every
digest checks out: a bad file is refused with a message naming what is wrong, and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftsched.storage.errors import CorruptionError

MAGIC = b"RSSNAP02"
FORMAT = 2
DIGEST_BYTES = 16
_TAIL = struct.Struct(f">I{DIGEST_BYTES}s8s")
_COPY_BYTES = 1 << 20
MAX_TRAILER_BYTES = 1 << 20


class BundleError(CorruptionError):
    """The file is not a whole, intact raftsched state snapshot (the message says why)."""


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    offset: int
    size: int
    blake2b: str


@dataclass(frozen=True, slots=True)
class Trailer:
    index: int  # the applied index of the state it holds
    state_format: int
    families: tuple[Family, ...]
    info: dict[str, Any] = field(default_factory=dict)
    data_bytes: int = 0  # where the trailer starts


def write_bundle(out: Path, ssts: list[tuple[str, Path | None]], *, index: int, state_format: int,
                 info: dict[str, Any] | None = None) -> Trailer:
    """Copy each family's SST file (None: an empty family) into `out`, then the trailer; fsynced."""
    families = []
    offset = 0
    with open(out, "wb") as dst:
        for name, sst in ssts:
            if sst is None:
                families.append(Family(name, offset, 0, ""))
                continue
            digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
            size = 0
            with open(sst, "rb") as src:
                while chunk := src.read(_COPY_BYTES):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            families.append(Family(name, offset, size, digest.hexdigest()))
            offset += size
        trailer = Trailer(index, state_format, tuple(families), dict(info or {}), offset)
        dst.write(_encode_trailer(trailer))
        dst.flush()
        os.fsync(dst.fileno())
    return trailer


def _encode_trailer(trailer: Trailer) -> bytes:
    body = json.dumps({
        "format": FORMAT,
        "state_format": trailer.state_format,
        "index": trailer.index,
        "families": [{"name": f.name, "offset": f.offset, "size": f.size, "blake2b": f.blake2b}
                     for f in trailer.families],
        "info": trailer.info,
    }, sort_keys=True).encode()
    return body + _TAIL.pack(len(body), hashlib.blake2b(body, digest_size=DIGEST_BYTES).digest(), MAGIC)


def is_bundle(path: Path) -> bool:
    size = path.stat().st_size
    if size < _TAIL.size:
        return False
    with open(path, "rb") as f:
        f.seek(size - len(MAGIC))
        return f.read(len(MAGIC)) == MAGIC


def read_trailer(path: Path) -> Trailer:
    """The trailer, checked (magic, digest, format, offsets inside the file); data not yet read."""
    size = path.stat().st_size
    if size < _TAIL.size:
        raise BundleError(f"{path}: {size} bytes is too short to be a raftsched state snapshot (truncated?)")
    with open(path, "rb") as f:
        f.seek(size - _TAIL.size)
        tlen, digest, magic = _TAIL.unpack(f.read(_TAIL.size))
        if magic != MAGIC:
            raise BundleError(f"{path}: not a raftsched state snapshot of format {FORMAT} (bad magic bytes)")
        start = size - _TAIL.size - tlen
        if tlen > MAX_TRAILER_BYTES or start < 0:
            raise BundleError(f"{path}: the trailer length {tlen} does not fit the file (truncated?)")
        f.seek(start)
        body = f.read(tlen)
    if hashlib.blake2b(body, digest_size=DIGEST_BYTES).digest() != digest:
        raise BundleError(f"{path}: the trailer fails its checksum (the file is corrupted)")
    return _decode_trailer(path, body, start)


def _decode_trailer(path: Path, body: bytes, data_bytes: int) -> Trailer:
    try:
        raw = json.loads(body)
        if raw["format"] != FORMAT:
            raise BundleError(f"{path}: snapshot format {raw['format']}; this raftsched reads format {FORMAT}")
        families = tuple(Family(str(f["name"]), int(f["offset"]), int(f["size"]), str(f["blake2b"]))
                         for f in raw["families"])
        trailer = Trailer(int(raw["index"]), int(raw["state_format"]), families, dict(raw["info"]), data_bytes)
    except (ValueError, KeyError, TypeError) as err:
        raise BundleError(f"{path}: unreadable trailer: {err}") from None
    end = 0
    for fam in families:
        if fam.offset != end or fam.size < 0:
            raise BundleError(f"{path}: family {fam.name} is not where the trailer says (offset {fam.offset})")
        end += fam.size
    if end != data_bytes:
        raise BundleError(f"{path}: the families hold {end} bytes but the data is {data_bytes} bytes")
    return trailer


def verify(path: Path) -> Trailer:
    """Read the whole file and check every family's digest; returns the trailer."""
    trailer = read_trailer(path)
    with open(path, "rb") as f:
        for fam in trailer.families:
            if fam.size and _digest_of(f, fam.offset, fam.size) != fam.blake2b:
                raise BundleError(f"{path}: the data of {fam.name} fails its checksum (the file is corrupted)")
    return trailer


def _digest_of(f: Any, offset: int, size: int) -> str:
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    f.seek(offset)
    left = size
    while left:
        chunk = f.read(min(left, _COPY_BYTES))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def extract(path: Path, trailer: Trailer, dest: Path) -> dict[str, list[Path]]:
    """Write each non-empty family's SST file into `dest` (for ingestion); family -> files."""
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {}
    with open(path, "rb") as src:
        for fam in trailer.families:
            if not fam.size:
                continue
            target = dest / f"{fam.name}.sst"
            src.seek(fam.offset)
            with open(target, "wb") as dst:
                left = fam.size
                while left:
                    chunk = src.read(min(left, _COPY_BYTES))
                    dst.write(chunk)
                    left -= len(chunk)
            out[fam.name] = [target]
    return out


def rewrite_info(path: Path, info: dict[str, Any]) -> Trailer:
    """Replace the trailer's `info` in place (the data stays where it is)."""
    old = read_trailer(path)
    new = Trailer(old.index, old.state_format, old.families, dict(info), old.data_bytes)
    with open(path, "r+b") as f:
        f.truncate(old.data_bytes)
        f.seek(old.data_bytes)
        f.write(_encode_trailer(new))
        f.flush()
        os.fsync(f.fileno())
    return new


def copy(path: Path, dest: Path) -> None:
    shutil.copyfile(path, dest)

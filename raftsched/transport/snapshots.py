"""InstallSnapshot: a follower too far behind gets the leader's state, streamed from a file in chunks.

Sender: `file_chunks` reads the snapshot file (made by the node off its event loop) and yields the
metadata (first chunk), the data in CHUNK_BYTES pieces and a crc32 of the whole (last chunk).
Receiver: `receive_snapshot` writes the chunks to a file of its own, checking offsets, size and
checksum; only a whole, intact file is handed on (the node then checks the file's own digests):
a broken or partial transfer changes nothing on the follower. Neither side holds the snapshot in
memory, whatever its size. The receiver logs its progress (a node catching up by snapshot is a
daemon: a person follows it in the log): when the transfer starts, every PROGRESS_LOG_S, and at the end.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError

from raftsched.raft.messages import SnapshotMeta, SnapshotRequest
from raftsched.raft.validate import Problem
from raftsched.transport import convert
from raftsched.v1 import raft_pb2 as pb

log = logging.getLogger("raftsched.transport")

CHUNK_BYTES = 1 << 20
PROGRESS_LOG_S = 5.0  # a catching-up follower logs how much of the snapshot arrived this often
MAX_SNAPSHOT_BYTES = 64 << 30
_names = itertools.count(1)
Admit = Callable[[SnapshotRequest], "Problem | None"]  # why a snapshot request is refused, or None


class SnapshotTransferError(Exception):
    """The chunks do not form a whole, intact snapshot (or the node refused its content)."""


class MalformedSnapshotError(SnapshotTransferError):
    """The first chunk's request cannot be read (its configuration is no ConfigState)."""


class SnapshotRefusedError(SnapshotTransferError):
    """The request in the first chunk was refused (`problem`) before anything was written."""

    def __init__(self, request: SnapshotRequest, problem: Problem) -> None:
        super().__init__(f"{problem[0]}: {problem[1]}")
        self.request = request
        self.problem = problem


class SnapshotUnavailableError(Exception):
    """The sending node could not make a snapshot now (it will be asked again)."""


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """A snapshot to send: the request (with its meta), the file, and the member addresses."""

    request: SnapshotRequest
    path: Path
    addresses: dict[str, str]


@dataclass(frozen=True, slots=True)
class ReceivedSnapshot:
    request: SnapshotRequest
    path: Path  # the received file; the receiver owns it (and deletes it when done)
    addresses: dict[str, str]


def file_chunks(snapshot: SnapshotFile) -> Iterator[pb.InstallSnapshotChunk]:
    """The chunks of one transfer. A plain iterator: gRPC reads it as it sends (1 MiB per read,
    from the page cache, so the event loop is held only for a moment per chunk)."""
    msg, meta = snapshot.request, snapshot.request.meta
    config = convert.config_to_pb(meta.config, snapshot.addresses).SerializeToString()
    size = snapshot.path.stat().st_size
    crc = 0
    offset = 0
    with open(snapshot.path, "rb") as f:
        while True:
            data = f.read(CHUNK_BYTES)
            crc = zlib.crc32(data, crc)
            last = offset + len(data) >= size
            yield pb.InstallSnapshotChunk(
                **{"from": msg.frm},
                to=msg.to,
                term=msg.term,
                last_included_index=meta.index,
                last_included_term=meta.term,
                config=config if offset == 0 else b"",
                offset=offset,
                data=data,
                done=last,
                crc32c=crc if last else 0,
            )
            offset += len(data)
            if last:
                return


async def receive_snapshot(request_iterator: AsyncIterator[pb.InstallSnapshotChunk], directory: Path,
                           admit: Admit | None = None) -> ReceivedSnapshot:
    """Write the stream to a new file in `directory`; the file is removed unless it is whole.

    The first chunk carries the request (sender, term, metadata, configuration): `admit` judges it
    before a byte is written, so a stranger's snapshot never reaches the disk (issue 14)."""
    first = await anext(aiter(request_iterator), None)
    if first is None:
        raise SnapshotTransferError("stream ended before the first chunk")
    request, addresses = request_of(first)
    problem = admit(request) if admit is not None else None
    if problem is not None:
        raise SnapshotRefusedError(request, problem)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"incoming-{os.getpid()}-{next(_names)}.rss"
    try:
        with open(path, "wb") as out:
            await _receive(first, request_iterator, out)
        return ReceivedSnapshot(request, path, addresses)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


async def _receive(first: pb.InstallSnapshotChunk, request_iterator: AsyncIterator[pb.InstallSnapshotChunk],
                   out: BinaryIO) -> None:
    size = crc = 0
    started = time.monotonic()
    next_log = started + PROGRESS_LOG_S
    log.info("node=%s receiving a snapshot at index %d from %s", first.to, first.last_included_index,
             getattr(first, "from"))
    chunk = first
    while True:
        if (chunk.last_included_index, chunk.term) != (first.last_included_index, first.term):
            raise SnapshotTransferError("chunks of two different snapshots in one stream")
        if chunk.offset != size:
            raise SnapshotTransferError(f"chunk at offset {chunk.offset}, expected {size}")
        size += len(chunk.data)
        if size > MAX_SNAPSHOT_BYTES:
            raise SnapshotTransferError(f"snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
        out.write(chunk.data)
        crc = zlib.crc32(chunk.data, crc)
        now = time.monotonic()
        if chunk.done:
            if crc != chunk.crc32c:
                raise SnapshotTransferError("checksum mismatch: the snapshot was damaged in transfer")
            out.flush()
            log.info("node=%s received the snapshot at index %d: %d bytes in %.1f s", first.to,
                     first.last_included_index, size, now - started)
            return
        if now >= next_log:
            next_log = now + PROGRESS_LOG_S
            log.info("node=%s receiving the snapshot at index %d: %.1f MiB so far (%.1f MiB/s)", first.to,
                     first.last_included_index, size / (1 << 20), size / (1 << 20) / max(now - started, 1e-3))
        following = await anext(request_iterator, None)
        if following is None:
            raise SnapshotTransferError("stream ended before the last chunk")
        chunk = following


def request_of(first: pb.InstallSnapshotChunk) -> tuple[SnapshotRequest, dict[str, str]]:
    """The request the first chunk carries, and the member addresses of its configuration."""
    try:
        conf_pb = pb.ConfigState.FromString(first.config)
        config, addresses = convert.config_from_pb(conf_pb)
    except (DecodeError, convert.ConversionError) as err:
        raise MalformedSnapshotError(f"config: not a configuration ({err})") from None
    meta = SnapshotMeta(first.last_included_index, first.last_included_term, config)
    return SnapshotRequest(getattr(first, "from"), first.to, first.term, meta), addresses

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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from raftsched.raft.messages import SnapshotMeta, SnapshotRequest
from raftsched.transport import convert
from raftsched.v1 import raft_pb2 as pb

log = logging.getLogger("raftsched.transport")

CHUNK_BYTES = 1 << 20
PROGRESS_LOG_S = 5.0  # a catching-up follower logs how much of the snapshot arrived this often
MAX_SNAPSHOT_BYTES = 64 << 30
_names = itertools.count(1)


class SnapshotTransferError(Exception):
    """The chunks do not form a whole, intact snapshot (or the node refused its content)."""


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


async def receive_snapshot(request_iterator: AsyncIterator[pb.InstallSnapshotChunk], directory: Path
                           ) -> ReceivedSnapshot:
    """Write the stream to a new file in `directory`; the file is removed unless it is whole."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"incoming-{os.getpid()}-{next(_names)}.rss"
    try:
        with open(path, "wb") as out:
            received = await _receive(request_iterator, out, path)
        return received
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


async def _receive(request_iterator: AsyncIterator[pb.InstallSnapshotChunk], out: object, path: Path,
                   ) -> ReceivedSnapshot:
    first: pb.InstallSnapshotChunk | None = None
    size = crc = 0
    started = next_log = time.monotonic()
    async for chunk in request_iterator:
        if first is None:
            first = chunk
            log.info("node=%s receiving a snapshot at index %d from %s", first.to, first.last_included_index,
                     getattr(first, "from"))
            next_log = started + PROGRESS_LOG_S
        elif (chunk.last_included_index, chunk.term) != (first.last_included_index, first.term):
            raise SnapshotTransferError("chunks of two different snapshots in one stream")
        if chunk.offset != size:
            raise SnapshotTransferError(f"chunk at offset {chunk.offset}, expected {size}")
        size += len(chunk.data)
        if size > MAX_SNAPSHOT_BYTES:
            raise SnapshotTransferError(f"snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
        out.write(chunk.data)  # type: ignore[attr-defined]
        crc = zlib.crc32(chunk.data, crc)
        now = time.monotonic()
        if chunk.done:
            if crc != chunk.crc32c:
                raise SnapshotTransferError("checksum mismatch: the snapshot was damaged in transfer")
            out.flush()  # type: ignore[attr-defined]
            log.info("node=%s received the snapshot at index %d: %d bytes in %.1f s", first.to,
                     first.last_included_index, size, now - started)
            return _request_of(first, path)
        if now >= next_log:
            next_log = now + PROGRESS_LOG_S
            log.info("node=%s receiving the snapshot at index %d: %.1f MiB so far (%.1f MiB/s)", first.to,
                     first.last_included_index, size / (1 << 20), size / (1 << 20) / max(now - started, 1e-3))
    raise SnapshotTransferError("stream ended before the last chunk")


def _request_of(first: pb.InstallSnapshotChunk, path: Path) -> ReceivedSnapshot:
    conf_pb = pb.ConfigState()
    conf_pb.ParseFromString(first.config)
    config, addresses = convert.config_from_pb(conf_pb)
    meta = SnapshotMeta(first.last_included_index, first.last_included_term, config)
    request = SnapshotRequest(getattr(first, "from"), first.to, first.term, meta)
    return ReceivedSnapshot(request, path, addresses)

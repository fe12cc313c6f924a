"""InstallSnapshot: a follower too far behind gets the leader's state machine, streamed in chunks.

Sender: `stream_snapshot` writes the metadata (first chunk), the data in CHUNK_BYTES pieces and a
crc32 of the whole (last chunk), then returns the follower's answer. Receiver: `receive_snapshot`
reassembles, checks offsets, size and checksum, and only then hands the snapshot on: a broken
or partial transfer changes nothing on the follower.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from raftsched.raft.messages import SnapshotMeta, SnapshotRequest
from raftsched.transport import convert
from raftsched.v1 import raft_pb2 as pb

CHUNK_BYTES = 1 << 20
MAX_SNAPSHOT_BYTES = 4 << 30


class SnapshotTransferError(Exception):
    """The chunks do not form a whole, intact snapshot."""


@dataclass(frozen=True, slots=True)
class ReceivedSnapshot:
    request: SnapshotRequest
    data: bytes
    addresses: dict[str, str]


def chunks(msg: SnapshotRequest, data: bytes, addresses: dict[str, str]) -> Iterator[pb.InstallSnapshotChunk]:
    meta = msg.meta
    config = convert.config_to_pb(meta.config, addresses).SerializeToString()
    crc = zlib.crc32(data)
    offsets = range(0, max(len(data), 1), CHUNK_BYTES)
    for i, offset in enumerate(offsets):
        last = i == len(offsets) - 1
        yield pb.InstallSnapshotChunk(
            **{"from": msg.frm},
            to=msg.to,
            term=msg.term,
            last_included_index=meta.index,
            last_included_term=meta.term,
            config=config if i == 0 else b"",
            offset=offset,
            data=data[offset : offset + CHUNK_BYTES],
            done=last,
            crc32c=crc if last else 0,
        )


async def receive_snapshot(request_iterator: AsyncIterator[pb.InstallSnapshotChunk]) -> ReceivedSnapshot:
    first: pb.InstallSnapshotChunk | None = None
    parts: list[bytes] = []
    size = 0
    async for chunk in request_iterator:
        if first is None:
            first = chunk
        elif (chunk.last_included_index, chunk.term) != (first.last_included_index, first.term):
            raise SnapshotTransferError("chunks of two different snapshots in one stream")
        if chunk.offset != size:
            raise SnapshotTransferError(f"chunk at offset {chunk.offset}, expected {size}")
        size += len(chunk.data)
        if size > MAX_SNAPSHOT_BYTES:
            raise SnapshotTransferError(f"snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
        parts.append(chunk.data)
        if chunk.done:
            return _assemble(first, parts, chunk.crc32c)
    raise SnapshotTransferError("stream ended before the last chunk")


def _assemble(first: pb.InstallSnapshotChunk, parts: list[bytes], crc: int) -> ReceivedSnapshot:
    data = b"".join(parts)
    if zlib.crc32(data) != crc:
        raise SnapshotTransferError("checksum mismatch: the snapshot was damaged in transfer")
    conf_pb = pb.ConfigState()
    conf_pb.ParseFromString(first.config)
    config, addresses = convert.config_from_pb(conf_pb)
    meta = SnapshotMeta(first.last_included_index, first.last_included_term, config)
    request = SnapshotRequest(getattr(first, "from"), first.to, first.term, meta)
    return ReceivedSnapshot(request, data, addresses)

"""Just enough protobuf wire format for etcd's KV/Put and Maintenance/Status, so the anchor needs no
etcd Python library: the request is built byte by byte and the status answer read field by field."""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten bytes on the wire
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_field(number: int, data: bytes) -> bytes:
    return varint(number << 3 | LENGTH) + varint(len(data)) + data


def put_request(key: bytes, value: bytes) -> bytes:
    """etcdserverpb.PutRequest{key: 1, value: 2}."""
    return length_field(1, key) + length_field(2, value)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field: ints for varint/fixed, bytes for length-delimited."""
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, kind = key >> 3, key & 7
        if kind == VARINT:
            value, pos = read_varint(data, pos)
            yield number, value
        elif kind == LENGTH:
            size, pos = read_varint(data, pos)
            yield number, data[pos:pos + size]
            pos += size
        elif kind in (FIXED64, FIXED32):
            width = 8 if kind == FIXED64 else 4
            yield number, int.from_bytes(data[pos:pos + width], "little")
            pos += width
        else:
            raise ValueError(f"unsupported wire type {kind}")


def as_dict(data: bytes) -> dict[int, int | bytes]:
    """The last value of each field (enough for messages without repeated fields we care about)."""
    return dict(fields(data))


def etcd_status(data: bytes) -> dict[str, int]:
    """etcdserverpb.StatusResponse: member_id (header.2), leader (4), raftIndex (5), raftTerm (6),
    raftAppliedIndex (7)."""
    top = as_dict(data)
    header = top.get(1, b"")
    member = as_dict(header).get(2, 0) if isinstance(header, bytes) else 0
    names = {4: "leader", 5: "raft_index", 6: "raft_term", 7: "raft_applied_index"}
    out = {"member_id": int(member)}
    for number, name in names.items():
        value = top.get(number, 0)
        out[name] = value if isinstance(value, int) else 0
    return out

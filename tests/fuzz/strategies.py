"""Hypothesis strategies for every RPC a node serves, built from the protobuf descriptors.

`message(descriptor)` walks the message's fields: each one is left unset or drawn from a strategy
for its type, numbers reaching the edges of their wire type (2**64-1, -2**63, NaN, infinities,
enum values no .proto names), strings and bytes from empty to 1 MB, nested messages down to
`MAX_DEPTH`, repeated fields and maps of a few items. `body(method)` turns that into the bytes of
one frame: a valid encoding, random bytes, a truncated or bit-flipped valid encoding, or one with
junk appended. Nothing here knows a field by name, except `defang`, which keeps the few requests
that a caller of an insecure cluster may legitimately use to take it apart (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

from raftsched.v1 import admin_pb2, executor_pb2, jobs_pb2, raft_pb2, scheduler_pb2

MAX_DEPTH = 3
F = FieldDescriptor
U64, I64, U32, I32 = 2**64 - 1, 2**63 - 1, 2**32 - 1, 2**31 - 1
NODE_IDS = ("n1", "n2", "n3")  # the fuzz cluster's members (see conftest)
# Prebuilt huge values: hypothesis would otherwise build them one character at a time.
HUGE_TEXT = ("A" * 1000, "é" * 40_000, "x" * (1 << 20))
HUGE_BYTES = (b"\x00" * 1000, b"\xff" * 100_000, b"y" * (1 << 20))
SERVICES = [
    m.DESCRIPTOR.services_by_name[name]
    for m, name in ((raft_pb2, "Raft"), (scheduler_pb2, "Scheduler"), (admin_pb2, "Admin"), (executor_pb2, "Executor"))
]
METHODS: list[MethodDescriptor] = [method for service in SERVICES for method in service.methods]


def _edges(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Integers in [lo, hi], often one of the edges that overflow or confuse (2**53, 2**64-1, ...)."""
    edges = sorted(v for v in {lo, hi, 0, 1, -1, 2, hi - 1, 2**31, 2**32, 2**53 - 1, 2**53} if lo <= v <= hi)
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi), st.integers(0, 100))


_INTS: dict[int, st.SearchStrategy[Any]] = {
    F.TYPE_INT32: _edges(-(2**31), I32), F.TYPE_SINT32: _edges(-(2**31), I32), F.TYPE_SFIXED32: _edges(-(2**31), I32),
    F.TYPE_INT64: _edges(-(2**63), I64), F.TYPE_SINT64: _edges(-(2**63), I64), F.TYPE_SFIXED64: _edges(-(2**63), I64),
    F.TYPE_UINT32: _edges(0, U32), F.TYPE_FIXED32: _edges(0, U32),
    F.TYPE_UINT64: _edges(0, U64), F.TYPE_FIXED64: _edges(0, U64),
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    F.TYPE_FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
}

_TEXT = st.one_of(
    st.sampled_from(("", *NODE_IDS, "j1", "j2", "noop", "echo", "UTC", "Europe/Paris", "*/5 * * * *", "n4",
                     "../../etc/passwd", "America", "\x00", "e1")),
    st.text(max_size=40),
    st.sampled_from(HUGE_TEXT),
)
_BYTES = st.one_of(st.binary(max_size=64), st.sampled_from(HUGE_BYTES))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_STRING:
        return _TEXT
    if field.type == F.TYPE_BYTES:
        return _BYTES
    if field.type == F.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), I32))  # proto3 enums are open
    return _INTS[field.type]


def message(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type, each field present or not."""
    cls = GetMessageClass(descriptor)
    fields = {f.name: _field(f, depth) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(cls, descriptor, values))


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_scalar(key), _value(value, depth + 1), max_size=4)
    item = _value(field, depth + 1)
    if field.is_repeated:
        return st.lists(item, max_size=4)
    return item


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type in (F.TYPE_MESSAGE, F.TYPE_GROUP):
        if depth > MAX_DEPTH:
            return st.just(GetMessageClass(field.message_type)())
        return st.deferred(lambda: message(field.message_type, depth))
    return _scalar(field)


def _build(cls: Callable[[], Message], descriptor: Descriptor, values: dict[str, Any]) -> Message:
    msg = cls()
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        target = getattr(msg, name) if field.is_repeated or field.message_type else None
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for k, v in value.items():
                if isinstance(v, Message):
                    target[k].CopyFrom(v)  # type: ignore[index]
                else:
                    target[k] = v  # type: ignore[index]
        elif field.is_repeated:
            if field.message_type is not None:
                for v in value:
                    target.add().CopyFrom(v)  # type: ignore[union-attr]
            else:
                target.extend(value)  # type: ignore[union-attr]
        elif field.message_type is not None:
            target.CopyFrom(value)  # type: ignore[union-attr]
        else:
            setattr(msg, name, value)
    return msg


# --- frames ---------------------------------------------------------------------------------------


class Request:
    """One fuzzed call: the method, its frames (one for a unary request), and how they were made.
    Not a dataclass: hypothesis would print its fields (1 MB bodies) for a failing example."""

    def __init__(self, method: MethodDescriptor, frames: tuple[bytes, ...], how: str) -> None:
        self.method = method
        self.frames = frames
        self.how = how

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep 1 MB bodies out of it
        sizes = ",".join(str(len(f)) for f in self.frames)
        heads = [f[:60] for f in self.frames]
        return f"Request({self.path}, {self.how}, sizes=[{sizes}], heads={heads})"


def _mutations(valid: bytes) -> st.SearchStrategy[tuple[bytes, str]]:
    n = len(valid)
    options: list[st.SearchStrategy[tuple[bytes, str]]] = [
        st.just((valid, "valid")),
        st.binary(min_size=1, max_size=200).map(lambda b: (b, "random bytes")),
        st.binary(min_size=1, max_size=16).map(lambda b: (valid + b, "junk appended")),
    ]
    if n > 1:
        options.append(st.integers(1, n - 1).map(lambda k: (valid[:k], f"truncated at {k}/{n}")))
        options.append(st.tuples(st.integers(0, n - 1), st.integers(0, 7)).map(
            lambda t: (_flip(valid, *t), f"bit {t[1]} of byte {t[0]}/{n} flipped")))
    valid_only = options[0]
    return st.one_of(valid_only, valid_only, valid_only, *options)  # half of the frames are valid


def _flip(data: bytes, at: int, bit: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 1 << bit
    return bytes(out)


def _seeds() -> dict[str, Message]:
    """A valid request for the methods whose deeper code a random message rarely reaches; the
    fuzzer merges random fields into a copy (scalars replaced, repeated fields and maps extended)."""
    spec = jobs_pb2.JobSpec(handler="noop", name="fuzz", payload=b"p", labels={"k": "v"})
    schedule = scheduler_pb2.ScheduleSpec(name="fuzz-s", cron="*/5 * * * *", timezone="Europe/Paris", template=spec)
    S, A, R, E = scheduler_pb2, admin_pb2, raft_pb2, executor_pb2
    return {
        "SubmitJob": S.SubmitJobRequest(spec=spec),
        "SubmitJobs": S.SubmitJobsRequest(specs=[spec, spec]),
        "CreateSchedule": S.CreateScheduleRequest(spec=schedule),
        "ListJobs": S.ListJobsRequest(page_size=5, newest_first=True),
        "GetJob": S.GetJobRequest(id="j1"),
        "CancelJob": S.CancelJobRequest(id="j2", reason="fuzz"),
        "WatchJob": S.WatchJobRequest(id="j1"),
        "CheckFence": S.CheckFenceRequest(job_id="j1", attempt=1),
        "ReadLog": A.ReadLogRequest(from_index=1, limit=3),
        "StateHash": A.StateHashRequest(),
        "RequestVote": R.VoteRequest(**{"from": "n1"}, to="n2", term=1, pre_vote=True),
        "TimeoutNow": R.TimeoutNowRequest(**{"from": "n1"}, to="n2", term=1),
        "AppendEntries": R.AppendEntriesRequest(**{"from": "n4"}, to="n2", term=1, heartbeat=True),
        "Connect": E.ExecutorMessage(register=E.Register(executor_id="fuzz-e", slots=1, handlers=["noop"])),
    }


SEEDS = _seeds()


@st.composite
def request(draw: st.DrawFn, methods: list[MethodDescriptor] | None = None) -> Request:
    """One call of any method (or one of `methods`) with fuzzed frames."""
    method = draw(st.sampled_from(methods or METHODS))
    count = draw(st.integers(1, 3)) if method.client_streaming else 1
    frames, hows = [], []
    for _ in range(count):
        msg = draw(message(method.input_type))
        base = SEEDS.get(method.name)
        if base is not None and draw(st.booleans()):
            merged = type(base)()
            merged.CopyFrom(base)
            merged.MergeFrom(msg)
            msg = merged
        msg = defang(method, msg)
        frame, how = draw(_mutations(msg.SerializeToString()))
        frames.append(frame)
        hows.append(how)
    return Request(method, tuple(frames), "+".join(hows))


def defang(method: MethodDescriptor, msg: Message) -> Message:
    """Keep what a caller of an insecure cluster may do by right and that would take the cluster
    apart for real, rather than test it: remove or add members, and send Raft appends or snapshots
    in a member's name (an insecure cluster cannot tell a forged leader from the real one; TLS node
    certificates refuse them, and the corruption check catches a follower so forged, see
    tests/integration/test_hostile_raft.py and test_corruption.py). Votes and TimeoutNow in a
    member's name are kept: at worst they cause an election."""
    name = method.name
    if name in ("RemoveMember", "PromoteMember", "AddMember") and msg.id in NODE_IDS:  # type: ignore[attr-defined]
        msg.id = "x" + msg.id  # type: ignore[attr-defined]
    if name == "AddMember":
        msg.address += ":x"  # type: ignore[attr-defined]  # never HOST:PORT, so refused: no bogus learners
    if name in ("AppendEntries", "InstallSnapshot") and getattr(msg, "from") in NODE_IDS:
        setattr(msg, "from", "x" + getattr(msg, "from"))
    return msg

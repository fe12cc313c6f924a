"""Notification sinks and their outboxes in the state machine (SPEC §10, promise 13).

Events are made where the state machine decides what they report (a job's last attempt failed,
an attempt timed out or was fenced, an executor went down, a scheduled time was skipped, a new
leader): `emit` puts one copy into the outbox of every sink that asked for its type. An event's id
is `e<index>.<n>`: the log index of the entry that made it and its rank within that entry, so it is
the same on every replica and across every replay.

Only the leader delivers (`raftsched.notify`); what it delivered or gave up on comes back as a
NotifyAckCmd, which takes those events out of the outboxes. A new leader thus resumes with exactly
what is left, and an event delivered just before a failover may be delivered again with its id.

Bounds: at most MAX_SINKS sinks, MAX_PENDING events per outbox (a full outbox drops its oldest,
counted as `dropped`); the leader expires events older than its retry horizon (`expired`).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from raftsched.state import keys
from raftsched.state.model import Model, clamp_u64
from raftsched.state.validate import ValidationError
from raftsched.v1 import commands_pb2, notify_pb2

C = commands_pb2
N = notify_pb2

JOB_FAILED = "job.failed"
ATTEMPT_TIMED_OUT = "job.attempt_timed_out"
ATTEMPT_FENCED = "job.attempt_fenced"
EXECUTOR_DOWN = "executor.down"
EXECUTOR_QUARANTINED = "executor.quarantined"  # made once quarantine exists (issue 16 item 3)
SCHEDULE_SKIPPED = "schedule.skipped"
LEADER_CHANGED = "leader.changed"
TEST = "test"
EVENT_TYPES = (JOB_FAILED, ATTEMPT_TIMED_OUT, ATTEMPT_FENCED, EXECUTOR_DOWN, EXECUTOR_QUARANTINED,
               SCHEDULE_SKIPPED, LEADER_CHANGED, TEST)

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_SINKS = 32
MAX_PENDING = 10_000  # events in one sink's outbox; a full one drops its oldest
MAX_URL_CHARS = 2048
MAX_SECRET_BYTES = 1024
MAX_ACK_IDS = 10_000  # ids in one NotifyAckCmd, over every sink
MAX_TEXT = 500  # characters of a free text (an error, a reason) carried in an event or a sink
OK, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION = 0, 3, 5, 6, 9
_ID_RE = re.compile(r"e([1-9][0-9]{0,18})\.([0-9]{1,9})")


# --- event ids -----------------------------------------------------------------------------------


def event_id(index: int, n: int) -> str:
    return f"e{index}.{n}"


def event_key(index: int, n: int) -> bytes:
    """The outbox key suffix of an event: in log order, so an outbox is walked oldest first."""
    return keys.u64(index) + n.to_bytes(4, "big")


def key_of(event_id_text: str) -> bytes | None:
    """The key suffix an id names, or None when it names no event."""
    found = _ID_RE.fullmatch(event_id_text)
    if found is None or int(found.group(2)) >= 2**32 or int(found.group(1)) >= 2**64:
        return None
    return event_key(int(found.group(1)), int(found.group(2)))


# --- validation (the API before proposing, apply again) ------------------------------------------


def validate_sink(sink: notify_pb2.NotifySink) -> None:
    """Raise ValidationError naming the first bad field of a new sink."""
    if not NAME_RE.fullmatch(sink.name):
        raise ValidationError("name", "1..64 characters of [A-Za-z0-9._-], starting with a letter or digit")
    check_url(sink.url)
    if len(sink.secret) > MAX_SECRET_BYTES:
        raise ValidationError("secret", f"at most {MAX_SECRET_BYTES} bytes")
    unknown = [e for e in sink.events if e not in EVENT_TYPES]
    if unknown:
        raise ValidationError("events", f"unknown event type {unknown[0][:40]!r} (known: {', '.join(EVENT_TYPES)})")
    if len(set(sink.events)) != len(sink.events):
        raise ValidationError("events", "an event type is listed twice")


def check_url(url: str) -> None:
    if len(url) > MAX_URL_CHARS:
        raise ValidationError("url", f"at most {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValidationError("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ValidationError("url", f"not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("url", f"only http and https URLs are accepted, not {parts.scheme[:20]!r}")
    if not parts.hostname:
        raise ValidationError("url", "names no host")
    if port == 0:
        raise ValidationError("url", "port 0 is not a port")


# --- making events -------------------------------------------------------------------------------


def emit(m: Model, kind: str, time_ms: int, data: dict[str, Any], *, only: str = "") -> str:
    """Make one event of the entry being applied and queue it for every sink that wants it (or for
    the sink `only`, whatever its filter). Returns its id. Deterministic: the id and the bytes
    depend only on the entry and the state."""
    assert kind in EVENT_TYPES, f"unknown event type {kind}"
    index, n = m.entry_index, m.event_n
    m.event_n += 1
    m.event_counts[kind] = m.event_counts.get(kind, 0) + 1
    if only:
        sinks = [m.sinks[only]]
    else:
        sinks = sorted((s for s in m.sinks.values() if not s.events or kind in s.events), key=lambda s: s.name)
    if not sinks:
        return event_id(index, n)
    event = N.NotifyEvent(id=event_id(index, n), type=kind, time_ms=clamp_u64(time_ms),
                          data_json=json.dumps(data, sort_keys=True, separators=(",", ":")))
    raw = event.SerializeToString(deterministic=True)
    for sink in sinks:
        _enqueue(m, sink, event_key(index, n), raw)
    return event.id


def _enqueue(m: Model, sink: notify_pb2.NotifySink, key: bytes, raw: bytes) -> None:
    outbox = m.outbox.setdefault(sink.name, {})
    if len(outbox) >= MAX_PENDING:
        oldest = next(iter(outbox))
        m.outbox_remove(sink.name, oldest)
        sink.dropped += 1
    m.outbox_put(sink.name, key, raw)
    sink.queued += 1
    sink.pending = len(outbox)
    m.put_sink(sink)


def text(value: str) -> str:
    """A free text bounded for an event's data."""
    return value[:MAX_TEXT]


# --- handlers -----------------------------------------------------------------------------------


def on_add(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    sink = N.NotifySink()
    sink.CopyFrom(cmd.notify_add.sink)
    try:
        validate_sink(sink)
    except ValidationError as err:
        return _refuse(m, INVALID_ARGUMENT, str(err))
    if sink.name in m.sinks:
        return _refuse(m, ALREADY_EXISTS, f"name: a sink named {sink.name!r} exists (remove it first)")
    if len(m.sinks) >= MAX_SINKS:
        return _refuse(m, FAILED_PRECONDITION, f"at most {MAX_SINKS} sinks")
    fresh = N.NotifySink(name=sink.name, url=sink.url, secret=sink.secret, events=sink.events,
                         created_ms=clamp_u64(cmd.time_ms), has_secret=bool(sink.secret))
    m.put_sink(fresh)
    return C.ApplyResult()


def on_remove(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    name = cmd.notify_remove.name
    if name not in m.sinks:
        return _refuse(m, NOT_FOUND, f"no sink named {name[:64]!r}")
    for key in list(m.outbox.get(name, {})):
        m.outbox_remove(name, key)
    m.outbox.pop(name, None)
    m.delete_sink(name)
    return C.ApplyResult()


def on_test(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """A `test` event for one sink only, whatever its event filter."""
    sink = m.sinks.get(cmd.notify_test.name)
    if sink is None:
        return _refuse(m, NOT_FOUND, f"no sink named {cmd.notify_test.name[:64]!r}")
    made = emit(m, TEST, cmd.time_ms, {"sink": sink.name}, only=sink.name)
    return C.ApplyResult(event_id=made)


def on_ack(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """Take delivered and expired events out of the outboxes. Ids no longer there (acknowledged
    by an earlier leader, or dropped) are ignored: an acknowledgement is idempotent."""
    progress = cmd.notify_ack.sinks
    if sum(len(p.delivered) + len(p.expired) for p in progress) > MAX_ACK_IDS:
        return _refuse(m, INVALID_ARGUMENT, f"notify_ack: at most {MAX_ACK_IDS} ids")
    for item in progress:
        sink = m.sinks.get(item.sink)
        if sink is None:
            continue  # removed meanwhile
        sink.delivered += _take(m, sink.name, item.delivered)
        sink.expired += _take(m, sink.name, item.expired)
        if item.delivered:
            sink.last_delivered_ms = clamp_u64(cmd.time_ms)
        sink.failed_attempts += item.failed_attempts
        if item.last_error:
            sink.last_error = text(item.last_error)
            sink.last_error_ms = clamp_u64(item.last_error_ms or cmd.time_ms)
        sink.pending = len(m.outbox.get(sink.name, {}))
        m.put_sink(sink)
    return C.ApplyResult()


def _take(m: Model, name: str, ids: Any) -> int:
    outbox = m.outbox.get(name, {})
    taken = 0
    for text_id in ids:
        key = key_of(text_id)
        if key is not None and key in outbox:
            m.outbox_remove(name, key)
            taken += 1
    return taken


def on_leader_changed(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    changed = cmd.leader_changed
    emit(m, LEADER_CHANGED, cmd.time_ms, {"leader": text(changed.leader), "term": changed.term})
    return C.ApplyResult()


def _refuse(m: Model, code: int, reason: str) -> commands_pb2.ApplyResult:
    m.counters.refused_commands += 1
    return C.ApplyResult(error=reason, code=code)


def public(sink: notify_pb2.NotifySink) -> notify_pb2.NotifySink:
    """A copy fit to leave the node: without the secret."""
    out = N.NotifySink()
    out.CopyFrom(sink)
    out.secret = b""
    out.has_secret = bool(sink.secret)
    return out

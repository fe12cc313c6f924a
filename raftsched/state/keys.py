"""The state machine's column families and the byte layout of their keys (state format 2).

    sm_jobs       seq                      -> Job            every job, live or finished
    sm_by_state   state u8 | seq           -> b""            every job under its current state
    sm_ended      ended_ms | seq           -> b""            finished jobs by the time they ended
    sm_by_sched   name | 0x00 | seq        -> state u8       jobs a schedule made (0 while live)
    sm_idem       key                      -> time | job id  idempotency keys
    sm_idem_time  time | key               -> b""            the same keys by the time they were made
    sm_executors  executor id              -> ExecutorInfo   replicated fields only
    sm_schedules  name                     -> Schedule       next_fire_times is computed on read
    sm_alarms     node | 0x00 | alarm      -> Alarm          alarms raised on nodes (CORRUPT)
    sm_sinks      name                     -> NotifySink     notification sinks and their counters
    sm_outbox     sink | 0x00 | index | n  -> NotifyEvent    events not yet delivered (n: u32)
    sm_meta       name                     -> u64

Integers are u64 big-endian, so RocksDB's byte order is numeric order: a walk of sm_by_state from
(state, seq) is a walk in submit order, and sm_ended and sm_idem_time are walked oldest first.
Schedule and sink names never hold 0x00 (see `schedules.NAME_RE`), so the separator cannot be forged.
"""

from __future__ import annotations

import struct

JOBS = "sm_jobs"
BY_STATE = "sm_by_state"
ENDED = "sm_ended"
BY_SCHEDULE = "sm_by_sched"
IDEM = "sm_idem"
IDEM_TIME = "sm_idem_time"
EXECUTORS = "sm_executors"
SCHEDULES = "sm_schedules"
ALARMS = "sm_alarms"
SINKS = "sm_sinks"
OUTBOX = "sm_outbox"
META = "sm_meta"

FAMILIES = [JOBS, BY_STATE, ENDED, BY_SCHEDULE, IDEM, IDEM_TIME, EXECUTORS, SCHEDULES, ALARMS, SINKS, OUTBOX, META]
FORMAT_1_FAMILIES = [JOBS, IDEM, EXECUTORS, SCHEDULES, META]

U64 = struct.Struct(">Q")
_PAIR = struct.Struct(">QQ")
_STATE_SEQ = struct.Struct(">BQ")
SEP = b"\x00"


def u64(value: int) -> bytes:
    return U64.pack(value)


def read_u64(raw: bytes) -> int:
    return int(U64.unpack(raw)[0])


def job_key(seq: int) -> bytes:
    return U64.pack(seq)


def seq_of(job_id: str) -> int | None:
    """Job ids are `j<seq>`; anything else names no job."""
    digits = job_id[1:]
    if job_id[:1] != "j" or not digits.isdigit() or len(digits) > 19 or digits[0] == "0":
        return None
    return int(digits)


def state_key(state: int, seq: int) -> bytes:
    return _STATE_SEQ.pack(state, seq)


def state_prefix(state: int) -> bytes:
    return bytes([state])


def state_key_seq(key: bytes) -> int:
    return int(_STATE_SEQ.unpack(key)[1])


def ended_key(ended_ms: int, seq: int) -> bytes:
    return _PAIR.pack(ended_ms, seq)


def ended_key_parts(key: bytes) -> tuple[int, int]:
    ended_ms, seq = _PAIR.unpack(key)
    return int(ended_ms), int(seq)


def schedule_prefix(name: str) -> bytes:
    return name.encode() + SEP


def schedule_key(name: str, seq: int) -> bytes:
    return schedule_prefix(name) + U64.pack(seq)


def schedule_key_seq(key: bytes) -> int:
    return read_u64(key[-8:])


def alarm_key(node: str, alarm: str) -> bytes:
    return node.encode() + SEP + alarm.encode()


def idem_value(time_ms: int, job_id: str) -> bytes:
    return U64.pack(time_ms) + job_id.encode()


def idem_value_parts(raw: bytes) -> tuple[int, str]:
    return read_u64(raw[:8]), raw[8:].decode()


def idem_time_key(time_ms: int, key: str) -> bytes:
    return U64.pack(time_ms) + key.encode()


def idem_time_key_parts(raw: bytes) -> tuple[int, str]:
    return read_u64(raw[:8]), raw[8:].decode()


def outbox_prefix(sink: str) -> bytes:
    return sink.encode() + SEP


def outbox_key(sink: str, event_key: bytes) -> bytes:
    """`event_key` is `raftsched.state.notify.event_key(index, n)`: 12 bytes."""
    return outbox_prefix(sink) + event_key


def outbox_key_parts(key: bytes) -> tuple[str, bytes]:
    return key[:-13].decode(), key[-12:]

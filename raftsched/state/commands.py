"""Build and encode state-machine commands, the only bytes the scheduler puts in the Raft log.

The leader builds a command, stamps it with its clock (`time_ms`) and proposes `encode(cmd)`;
`apply` never reads a clock. `VERSION` is written into every command so the log format can
outlive a refactor: an entry with any other version is refused, never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2

VERSION = 1
OUTPUT_TAIL_MAX_BYTES = 4096
# One Raft entry holds at most this many bytes of specs (issue 14): a SubmitJobs of twelve 1 MiB
# payloads used to become one 12.6 MB entry, held at once by the leader's log cache, every
# follower's in-flight window and every node's RocksDB write batch. The API splits a bigger batch
# into several entries and refuses a single spec that alone passes it.
MAX_ENTRY_BYTES = 4 << 20
ENTRY_OVERHEAD_BYTES = 64  # the command's version, time and framing around its specs

Command = commands_pb2.Command


def encode(cmd: commands_pb2.Command, time_ms: int | None = None) -> bytes:
    """The log bytes of `cmd`, with version 1 and `time_ms` (when given; else the one it holds).

    Deterministic serialization: equal commands give equal bytes (protobuf maps otherwise may not).
    """
    out = commands_pb2.Command()
    out.CopyFrom(cmd)
    out.version = VERSION
    if time_ms is not None:
        out.time_ms = time_ms
    return out.SerializeToString(deterministic=True)


def decode(data: bytes) -> commands_pb2.Command:
    """Parse log bytes; raises google.protobuf.message.DecodeError on malformed input."""
    return commands_pb2.Command.FromString(data)


def submit(*specs: jobs_pb2.JobSpec) -> commands_pb2.Command:
    return commands_pb2.Command(submit=commands_pb2.SubmitJobsCmd(specs=specs))


def split_by_size(sizes: Iterable[int], limit: int = MAX_ENTRY_BYTES) -> list[list[int]]:
    """Positions of `sizes` in groups, in order, each group's sum (plus framing) at most `limit`.

    A size that alone passes the limit gets a group of its own (the caller refuses it first)."""
    groups: list[list[int]] = []
    used = limit  # forces a new group for the first item
    for i, size in enumerate(sizes):
        cost = size + _framing(size)
        if groups and used + cost <= limit:
            groups[-1].append(i)
            used += cost
        else:
            groups.append([i])
            used = ENTRY_OVERHEAD_BYTES + cost
    return groups


def _framing(size: int) -> int:
    """A repeated field's tag and length prefix (varint) around `size` bytes."""
    return 1 + max(1, (size.bit_length() + 6) // 7)


def cancel(job_id: str, reason: str = "") -> commands_pb2.Command:
    return commands_pb2.Command(cancel=commands_pb2.CancelJobCmd(job_id=job_id, reason=reason))


def assign(items: Iterable[tuple[str, int, str]]) -> commands_pb2.Command:
    """Items are (job id, new attempt number, executor id)."""
    cmd = commands_pb2.AssignCmd()
    for job_id, attempt, executor in items:
        cmd.items.add(job_id=job_id, attempt=attempt, executor=executor)
    return commands_pb2.Command(assign=cmd)


def started(executor: str, refs: Iterable[tuple[str, int]]) -> commands_pb2.Command:
    cmd = commands_pb2.AttemptsStartedCmd(executor=executor, items=_refs(refs))
    return commands_pb2.Command(started=cmd)


def finished_item(
    job_id: str,
    attempt: int,
    end: int,
    *,
    exit_code: int = 0,
    error: str = "",
    output_tail: bytes = b"",
) -> commands_pb2.FinishedItem:
    return commands_pb2.FinishedItem(
        job_id=job_id,
        attempt=attempt,
        end=end,  # type: ignore[arg-type]
        exit_code=exit_code,
        error=error,
        output_tail=output_tail[-OUTPUT_TAIL_MAX_BYTES:],
    )


def finished(executor: str, items: Iterable[commands_pb2.FinishedItem],
             started: Iterable[tuple[str, int]] = ()) -> commands_pb2.Command:
    """`started`: attempts to record as started first, in the same entry."""
    cmd = commands_pb2.AttemptsFinishedCmd(executor=executor, items=items, started=_refs(started))
    return commands_pb2.Command(finished=cmd)


def timed_out(refs: Iterable[tuple[str, int]]) -> commands_pb2.Command:
    return commands_pb2.Command(timed_out=commands_pb2.AttemptTimedOutCmd(items=_refs(refs)))


def executor_up(
    executor_id: str, slots: int, labels: Mapping[str, str] | None = None, handlers: Iterable[str] = ()
) -> commands_pb2.Command:
    cmd = commands_pb2.ExecutorUpCmd(
        executor_id=executor_id, slots=slots, labels=dict(labels or {}), handlers=handlers
    )
    return commands_pb2.Command(executor_up=cmd)


def executor_down(executor_id: str, reason: str = "", poison_after: int = 0) -> commands_pb2.Command:
    cmd = commands_pb2.ExecutorDownCmd(executor_id=executor_id, reason=reason, poison_after=poison_after)
    return commands_pb2.Command(executor_down=cmd)


def quarantine(executor_id: str, until_ms: int, reason: str) -> commands_pb2.Command:
    cmd = commands_pb2.QuarantineExecutorCmd(executor_id=executor_id, until_ms=until_ms, reason=reason)
    return commands_pb2.Command(quarantine=cmd)


def release(executor_id: str, reason: str) -> commands_pb2.Command:
    return commands_pb2.Command(release=commands_pb2.ReleaseExecutorCmd(executor_id=executor_id, reason=reason))


def drain(executor_id: str) -> commands_pb2.Command:
    return commands_pb2.Command(drain=commands_pb2.DrainExecutorCmd(executor_id=executor_id))


def purge(job_ids: Iterable[str] = (), idempotency_keys: Iterable[str] = (),
          trim_skipped: Iterable[tuple[str, int]] = ()) -> commands_pb2.Command:
    """Forget finished jobs, idempotency keys, and skipped-fire records older than a time."""
    cmd = commands_pb2.PurgeCmd(job_ids=job_ids, idempotency_keys=idempotency_keys)
    for schedule, before_ms in trim_skipped:
        cmd.trim_skipped.add(schedule=schedule, before_ms=before_ms)
    return commands_pb2.Command(purge=cmd)


def alarm(node: str, name: str, *, active: bool, reason: str = "") -> commands_pb2.Command:
    return commands_pb2.Command(alarm=commands_pb2.AlarmCmd(node=node, alarm=name, active=active, reason=reason))


def check_hash(check_id: int) -> commands_pb2.Command:
    """Every node hashes its stored state at this entry's index (the corruption check)."""
    return commands_pb2.Command(check_hash=commands_pb2.CheckHashCmd(check_id=check_id))


# --- schedules ---


def create_schedule(spec: scheduler_pb2.ScheduleSpec) -> commands_pb2.Command:
    return commands_pb2.Command(create_schedule=commands_pb2.CreateScheduleCmd(spec=spec))


def pause_schedule(name: str, *, paused: bool, note: str = "") -> commands_pb2.Command:
    return commands_pb2.Command(pause_schedule=commands_pb2.PauseScheduleCmd(name=name, paused=paused, note=note))


def delete_schedule(name: str) -> commands_pb2.Command:
    return commands_pb2.Command(delete_schedule=commands_pb2.DeleteScheduleCmd(name=name))


def fire_schedule(name: str, scheduled_time: int, *, manual: bool = False) -> commands_pb2.Command:
    fire = commands_pb2.FireScheduleCmd(name=name, scheduled_time=scheduled_time, manual=manual)
    return commands_pb2.Command(fire_schedule=fire)


def skip_fires(name: str, fires: Iterable[tuple[int, str]]) -> commands_pb2.Command:
    """Fire times decided as skipped: (scheduled time, reason)."""
    items = [scheduler_pb2.SkippedFire(scheduled_time=t, reason=reason) for t, reason in fires]
    return commands_pb2.Command(skip_fires=commands_pb2.SkipFiresCmd(name=name, fires=items))


def _refs(refs: Iterable[tuple[str, int]]) -> list[jobs_pb2.AttemptRef]:
    return [jobs_pb2.AttemptRef(job_id=job_id, attempt=attempt) for job_id, attempt in refs]

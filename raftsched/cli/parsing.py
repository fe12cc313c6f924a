"""Turning command-line strings into values and protobuf messages (pure functions)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from raftsched.cli.errors import UsageError
from raftsched.config import ConfigError, parse_labels
from raftsched.config import parse_duration_ms as config_duration_ms
from raftsched.v1 import jobs_pb2


def parse_duration_ms(text: str, *, name: str = "duration") -> int:
    """'500ms', '10s', '2m', '1h30m' to milliseconds; a plain number counts seconds (see
    `raftsched.config.parse_duration_ms`)."""
    try:
        return config_duration_ms(text, name)
    except ConfigError as e:
        raise UsageError(str(e)) from e


def parse_duration_s(text: str, *, name: str = "timeout") -> float:
    ms = parse_duration_ms(text, name=name)
    if ms <= 0:
        raise UsageError(f"{name} must be more than 0")
    return ms / 1000


def parse_state(text: str) -> int:
    """'queued', 'QUEUED' or 'JOB_STATE_QUEUED' to the JobState value."""
    name = text.strip().upper().replace("-", "_")
    if not name.startswith("JOB_STATE_"):
        name = "JOB_STATE_" + name
    try:
        return jobs_pb2.JobState.Value(name)
    except ValueError:
        choices = ", ".join(n.removeprefix("JOB_STATE_").lower() for n in jobs_pb2.JobState.keys()[1:])
        raise UsageError(f"--state {text!r}: not a job state (one of {choices})") from None


def split_list(values: Iterable[str] | None) -> list[str]:
    """Repeated flags and comma lists alike: ['a,b', 'c'] -> ['a', 'b', 'c']."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def read_payload(text: str | None) -> bytes:
    """The payload itself, or '@FILE' to read a file ('@-' reads standard input)."""
    if not text:
        return b""
    if not text.startswith("@"):
        return text.encode()
    path = text[1:]
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"--payload {text}: {e.strerror or e}") from e


def labels_from_flags(values: Sequence[str] | None) -> dict[str, str]:
    try:
        return parse_labels(list(values or ()), "--label")
    except ConfigError as e:
        raise UsageError(str(e)) from e


def build_job_spec(*, handler: str | None, argv: Sequence[str] | None, name: str | None = None,
                   payload: str | None = None, max_attempts: int | None = None,
                   timeout: str | None = None, priority: int | None = None,
                   depends_on: Sequence[str] | None = None, labels: Sequence[str] | None = None,
                   slots: int | None = None, idempotency_key: str | None = None,
                   backoff_initial: str | None = None, backoff_max: str | None = None,
                   backoff_multiplier: float | None = None) -> jobs_pb2.JobSpec:
    """A JobSpec from job flags; exactly one of handler and argv says what runs."""
    if bool(handler) == bool(argv):
        raise UsageError("say what the job runs: --handler NAME, or -- ARGV... for a command"
                         if not handler else "give --handler or -- ARGV..., not both")
    spec = jobs_pb2.JobSpec(name=name or "", handler=handler or "", command=list(argv or ()),
                            payload=read_payload(payload), max_attempts=max_attempts or 0,
                            priority=priority or 0, depends_on=split_list(depends_on),
                            labels=labels_from_flags(labels), slots=slots or 0,
                            idempotency_key=idempotency_key or "")
    if timeout:
        spec.timeout_ms = parse_duration_ms(timeout, name="--timeout")
    if backoff_initial:
        spec.backoff.initial_ms = parse_duration_ms(backoff_initial, name="--backoff-initial")
    if backoff_max:
        spec.backoff.max_ms = parse_duration_ms(backoff_max, name="--backoff-max")
    if backoff_multiplier:
        spec.backoff.multiplier = backoff_multiplier
    return spec


def hoist_trailing_json(argv: list[str]) -> list[str]:
    """Move a '--json' that follows a job's '-- ARGV...' back in front of the '--'.

    Why: scripts append --json to any command line, also `job submit ... -- sh -c '...'`, where
    it would otherwise become an argument of the job's command.
    """
    if "--" not in argv or argv[-1] != "--json":
        return argv
    separator = argv.index("--")
    return [*argv[:separator], "--json", *argv[separator:-1]]

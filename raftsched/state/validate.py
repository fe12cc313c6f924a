"""Validation of a job spec and of an executor's registration: every limit in one place, each
error naming its field.

The API layer calls `validate_spec` with the known handlers before proposing (and maps
`ValidationError` to INVALID_ARGUMENT); `apply` calls it again without handlers, so a committed
entry that bypassed the API still cannot put an unbounded or contradictory spec into the state.
Existence of `depends_on` jobs is checked against the state by the caller.

`validate_executor` is the same for an executor (issue 14): the leader checks a `Register` with
it before proposing anything, and `apply` checks `executor_up` with it again. Executor labels
follow the job label rules (a job's label must equal an executor's to match it), except that an
executor's label value may be empty (`--label k=` has always been accepted; it matches no job).
Handler names use the label alphabet too, up to MAX_HANDLER_CHARS, since they become valid job
handlers. Error messages quote at most ECHO_CHARS of what was sent (`raftsched.quoting.quote`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

from raftsched.quoting import quote
from raftsched.v1 import jobs_pb2

MAX_PAYLOAD_BYTES = 1 << 20
MAX_ATTEMPTS_LIMIT = 100
PRIORITY_LIMIT = 1000
MAX_SLOTS = 64
MAX_NAME_CHARS = 200
MAX_KEY_CHARS = 200
MAX_LABEL_CHARS = 63
MAX_LABELS = 64
MAX_ARGV = 1024
MAX_ARG_CHARS = 8192
MAX_DEPENDS_ON = 1000
MAX_BACKOFF_MS = 24 * 3600 * 1000
MAX_MULTIPLIER = 100.0

KNOWN_SHOWN = 10  # known handler names listed in an "unknown handler" error (executors may bring 256 each)
LABEL_RE = re.compile(r"[A-Za-z0-9._/-]+")
JOB_ID_RE = re.compile(r"j[1-9][0-9]{0,18}")

MAX_EXECUTOR_ID_CHARS = 128
MAX_EXECUTOR_SLOTS = 1024  # as `raftsched executor --slots`
MAX_EXECUTOR_LABELS = MAX_LABELS
MAX_EXECUTOR_HANDLERS = 256
MAX_HANDLER_CHARS = 128  # as raftsched.executor.handlers.MAX_HANDLER_NAME
# Letters, digits, '.', '_', '-'; not starting with '.' or '-' (no hidden files, no flags).
EXECUTOR_ID_RE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._-]{{0,{MAX_EXECUTOR_ID_CHARS - 1}}}")


class ValidationError(ValueError):
    """A spec field is out of its limits. `str(err)` starts with the field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_job_id(value: str) -> bool:
    return JOB_ID_RE.fullmatch(value) is not None


def validate_spec(spec: jobs_pb2.JobSpec, known_handlers: AbstractSet[str] | None) -> None:
    """Raise ValidationError for the first field out of its limits; return None when all hold."""
    _check_target(spec, known_handlers)
    _check_limits(spec)
    _check_backoff(spec.backoff)
    _check_labels(spec)
    _check_depends_on(spec)


def _check_target(spec: jobs_pb2.JobSpec, known_handlers: AbstractSet[str] | None) -> None:
    if bool(spec.command) == bool(spec.handler):
        raise ValidationError("handler", "exactly one of command and handler must be set")
    if spec.handler and known_handlers is not None and spec.handler not in known_handlers:
        names = sorted(known_handlers)
        more = f" and {len(names) - KNOWN_SHOWN} more" if len(names) > KNOWN_SHOWN else ""
        known = ", ".join(names[:KNOWN_SHOWN]) + more
        raise ValidationError("handler", f"unknown handler {quote(spec.handler)} (known: {known})")
    if len(spec.command) > MAX_ARGV:
        raise ValidationError("command", f"at most {MAX_ARGV} arguments")
    for i, arg in enumerate(spec.command):
        if not arg:
            raise ValidationError("command", f"argument {i} is empty")
        if len(arg) > MAX_ARG_CHARS:
            raise ValidationError("command", f"argument {i} is longer than {MAX_ARG_CHARS} characters")


def _check_limits(spec: jobs_pb2.JobSpec) -> None:
    if len(spec.payload) > MAX_PAYLOAD_BYTES:
        raise ValidationError("payload", f"{len(spec.payload)} bytes is over the limit of 1 MiB")
    if spec.max_attempts > MAX_ATTEMPTS_LIMIT:
        raise ValidationError("max_attempts", f"must be 1..{MAX_ATTEMPTS_LIMIT} (0 means 3)")
    if not -PRIORITY_LIMIT <= spec.priority <= PRIORITY_LIMIT:
        raise ValidationError("priority", f"must be -{PRIORITY_LIMIT}..{PRIORITY_LIMIT}")
    if spec.slots > MAX_SLOTS:
        raise ValidationError("slots", f"must be 0..{MAX_SLOTS} (0 means 1)")
    if len(spec.name) > MAX_NAME_CHARS:
        raise ValidationError("name", f"at most {MAX_NAME_CHARS} characters")
    if len(spec.idempotency_key) > MAX_KEY_CHARS:
        raise ValidationError("idempotency_key", f"at most {MAX_KEY_CHARS} characters")


def _check_backoff(backoff: jobs_pb2.RetryBackoff) -> None:
    if backoff.initial_ms > MAX_BACKOFF_MS:
        raise ValidationError("backoff.initial_ms", f"at most {MAX_BACKOFF_MS} ms (one day)")
    if backoff.max_ms > MAX_BACKOFF_MS:
        raise ValidationError("backoff.max_ms", f"at most {MAX_BACKOFF_MS} ms (one day)")
    m = backoff.multiplier
    if m != 0.0 and not (math.isfinite(m) and 1.0 <= m <= MAX_MULTIPLIER):
        raise ValidationError("backoff.multiplier", f"must be 1..{MAX_MULTIPLIER:g} (0 means 2)")


def _check_labels(spec: jobs_pb2.JobSpec) -> None:
    if len(spec.labels) > MAX_LABELS:
        raise ValidationError("labels", f"at most {MAX_LABELS} labels")
    for key, value in spec.labels.items():
        for what, text in (("key", key), ("value", value)):
            if not text or len(text) > MAX_LABEL_CHARS or not LABEL_RE.fullmatch(text):
                raise ValidationError(
                    "labels",
                    f"label {what} {quote(text)} must be 1..{MAX_LABEL_CHARS} characters of [A-Za-z0-9._/-]",
                )


def _check_depends_on(spec: jobs_pb2.JobSpec) -> None:
    if len(spec.depends_on) > MAX_DEPENDS_ON:
        raise ValidationError("depends_on", f"at most {MAX_DEPENDS_ON} dependencies")
    for dep in spec.depends_on:
        if not is_job_id(dep):
            raise ValidationError("depends_on", f"{quote(dep)} is not a job id (like j42)")


# --- executors --------------------------------------------------------------------------------


def is_executor_id(value: str) -> bool:
    return EXECUTOR_ID_RE.fullmatch(value) is not None


def validate_executor(executor_id: str, slots: int, labels: Mapping[str, str], handlers: Sequence[str]) -> None:
    """Raise ValidationError for the first field of a registration out of its limits."""
    if not executor_id:
        raise ValidationError("executor_id", "must not be empty")
    if not is_executor_id(executor_id):
        raise ValidationError(
            "executor_id",
            f"{quote(executor_id)} must be 1..{MAX_EXECUTOR_ID_CHARS} characters of [A-Za-z0-9._-], "
            "not starting with '.' or '-'",
        )
    if not 1 <= slots <= MAX_EXECUTOR_SLOTS:
        raise ValidationError("slots", f"must be 1..{MAX_EXECUTOR_SLOTS}, got {slots}")
    _check_executor_labels(labels)
    _check_handler_names(handlers)


def _check_executor_labels(labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_EXECUTOR_LABELS:
        raise ValidationError("labels", f"at most {MAX_EXECUTOR_LABELS} labels, got {len(labels)}")
    for key, value in labels.items():
        if not _label_text_ok(key, empty=False):
            raise ValidationError(
                "labels", f"label key {quote(key)} must be 1..{MAX_LABEL_CHARS} characters of [A-Za-z0-9._/-]")
        if not _label_text_ok(value, empty=True):
            raise ValidationError(
                "labels",
                f"label {key}: value {quote(value)} must be 0..{MAX_LABEL_CHARS} characters of [A-Za-z0-9._/-]",
            )


def _check_handler_names(handlers: Sequence[str]) -> None:
    if len(handlers) > MAX_EXECUTOR_HANDLERS:
        raise ValidationError("handlers", f"at most {MAX_EXECUTOR_HANDLERS} handler names, got {len(handlers)}")
    for name in handlers:
        if not (0 < len(name) <= MAX_HANDLER_CHARS and LABEL_RE.fullmatch(name)):
            raise ValidationError(
                "handlers", f"handler name {quote(name)} must be 1..{MAX_HANDLER_CHARS} characters of [A-Za-z0-9._/-]")


def _label_text_ok(text: str, *, empty: bool) -> bool:
    if not text:
        return empty
    return len(text) <= MAX_LABEL_CHARS and LABEL_RE.fullmatch(text) is not None

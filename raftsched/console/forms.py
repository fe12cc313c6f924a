"""What people type, checked before it becomes a request: the job-submit form and the job filters.

Each parser takes the submitted strings and returns a value or raises FormError naming the field.
The cluster checks everything again (and has the last word on a spec); these checks only turn the
obvious mistakes into a clear message next to the form, without a round trip.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from raftsched.cli.errors import UsageError
from raftsched.cli.parsing import parse_duration_ms
from raftsched.config import ConfigError, parse_labels
from raftsched.quoting import quote
from raftsched.v1 import jobs_pb2

from .fmt import JOB_STATES

MAX_TEXT = 200  # a filter's text (the server's limit for the name filter)
MAX_TOKEN = 64
MAX_PAYLOAD = 256 * 1024
MAX_DEPENDENCIES = 100


class FormError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class JobFilters:
    """The /jobs filters, as given in the query string (newest first, always)."""

    state: str = ""  # a JOB_STATES name, or "" for every state
    schedule: str = ""
    label: str = ""  # k=v[,k=v...]
    name: str = ""
    page: str = ""  # the page token to continue from
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def state_value(self) -> int:
        return jobs_pb2.JobState.Value("JOB_STATE_" + self.state) if self.state else jobs_pb2.JOB_STATE_UNSPECIFIED

    @property
    def any(self) -> bool:
        return bool(self.state or self.schedule or self.label or self.name)

    def query(self, **changes: str) -> str:
        """The query string of these filters with `changes` (empty values left out)."""
        values = {"state": self.state, "schedule": self.schedule, "label": self.label, "name": self.name,
                  "page": self.page, **changes}
        return urlencode({k: v for k, v in values.items() if v})


def job_filters(params: Mapping[str, str]) -> JobFilters:
    state = _text(params, "state").upper().removeprefix("JOB_STATE_")
    if state and state not in JOB_STATES:
        raise FormError("state", f"{quote(state)} is not a job state (one of {', '.join(JOB_STATES)})")
    label = _text(params, "label")
    try:
        labels = parse_labels(label, "label") if label else {}
    except ConfigError as e:
        raise FormError("label", str(e)) from None
    page = _text(params, "page", MAX_TOKEN)
    return JobFilters(state, _text(params, "schedule"), label, _text(params, "name"), page, labels)


def job_spec(form: Mapping[str, str]) -> jobs_pb2.JobSpec:
    """A JobSpec from the submit form: a handler or a command (split like a shell would)."""
    handler, command = _text(form, "handler"), _text(form, "command", 4096)
    if bool(handler) == bool(command):
        raise FormError("handler", "give a handler (such as noop, sleep, echo) or a command, not both")
    try:
        argv = shlex.split(command) if command else []
    except ValueError as e:
        raise FormError("command", f"cannot split it into arguments: {e}") from None
    payload = form.get("payload", "") or ""
    if len(payload.encode()) > MAX_PAYLOAD:
        raise FormError("payload", f"at most {MAX_PAYLOAD // 1024} KiB from this form")
    spec = jobs_pb2.JobSpec(name=_text(form, "name"), handler=handler, command=argv, payload=payload.encode(),
                            max_attempts=_int(form, "max_attempts", 0, 100),
                            priority=_int(form, "priority", -1000, 1000), slots=_int(form, "slots", 0, 1024),
                            depends_on=_ids(form), labels=_labels(form))
    spec.timeout_ms = _duration(form, "timeout")
    return spec


def _text(values: Mapping[str, str], name: str, limit: int = MAX_TEXT) -> str:
    value = (values.get(name) or "").strip()
    if len(value) > limit:
        raise FormError(name, f"at most {limit} characters")
    return value


def _int(values: Mapping[str, str], name: str, lo: int, hi: int) -> int:
    raw = _text(values, name, 20)
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise FormError(name, f"{quote(raw)} is not a whole number") from None
    if not lo <= value <= hi:
        raise FormError(name, f"must be between {lo} and {hi}")
    return value


def _duration(values: Mapping[str, str], name: str) -> int:
    raw = _text(values, name, 40)
    if not raw:
        return 0
    try:
        return parse_duration_ms(raw, name=name)
    except UsageError as e:
        raise FormError(name, str(e).removeprefix(f"{name}: ")) from None


def _ids(values: Mapping[str, str]) -> list[str]:
    ids = _text(values, "depends_on", 64 * MAX_DEPENDENCIES).replace(",", " ").split()
    if len(ids) > MAX_DEPENDENCIES:
        raise FormError("depends_on", f"at most {MAX_DEPENDENCIES} jobs")
    return ids


def _labels(values: Mapping[str, str]) -> dict[str, str]:
    raw = _text(values, "labels", 2000)
    try:
        return parse_labels(raw, "labels") if raw else {}
    except ConfigError as e:
        raise FormError("labels", str(e)) from None

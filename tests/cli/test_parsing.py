"""Command-line values: durations, states, job specs, and the trailing --json rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftsched.cli.errors import UsageError
from raftsched.cli.parsing import (
    build_job_spec,
    hoist_trailing_json,
    parse_duration_ms,
    parse_state,
    split_list,
)
from raftsched.v1 import jobs_pb2


@pytest.mark.parametrize(("text", "ms"), [
    ("500ms", 500), ("10s", 10_000), ("2m", 120_000), ("1h", 3_600_000), ("1m30s", 90_000),
    ("1.5s", 1500), ("120", 120_000), ("0", 0), (" 3S ", 3000),
])
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "abc", "5q", "-1s", "1s2", "ms"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="duration"):
        parse_duration_ms(text)


def test_states_accept_every_spelling() -> None:
    assert parse_state("queued") == parse_state("JOB_STATE_QUEUED") == jobs_pb2.JOB_STATE_QUEUED
    with pytest.raises(UsageError, match="succeeded"):
        parse_state("done")


def test_split_list_takes_repeats_and_commas() -> None:
    assert split_list(["a,b", " c ", ""]) == ["a", "b", "c"]


def test_job_spec_needs_exactly_one_of_handler_and_argv() -> None:
    with pytest.raises(UsageError, match="--handler"):
        build_job_spec(handler=None, argv=[])
    with pytest.raises(UsageError, match="not both"):
        build_job_spec(handler="noop", argv=["true"])


def test_job_spec_from_flags(tmp_path: Path) -> None:
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"\x00data")
    spec = build_job_spec(handler=None, argv=["sh", "-c", "true"], name="x", payload=f"@{payload}",
                          max_attempts=5, timeout="2m", priority=7, depends_on=["j1,j2", "j3"],
                          labels=["gpu=1"], slots=2, idempotency_key="k", backoff_initial="250ms")
    assert list(spec.command) == ["sh", "-c", "true"]
    assert spec.payload == b"\x00data"
    assert (spec.max_attempts, spec.timeout_ms, spec.priority, spec.slots) == (5, 120_000, 7, 2)
    assert list(spec.depends_on) == ["j1", "j2", "j3"]
    assert dict(spec.labels) == {"gpu": "1"}
    assert spec.backoff.initial_ms == 250
    assert spec.idempotency_key == "k"


def test_missing_payload_file_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="payload"):
        build_job_spec(handler="echo", argv=None, payload="@/nonexistent/file")


def test_trailing_json_after_the_command_is_the_clis_flag() -> None:
    argv = ["job", "submit", "--", "sh", "-c", "echo", "--json"]
    assert hoist_trailing_json(argv) == ["job", "submit", "--json", "--", "sh", "-c", "echo"]
    assert hoist_trailing_json(["job", "list", "--json"]) == ["job", "list", "--json"]

"""Spec validation: every limit, and every error names its field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftsched.state.validate import ValidationError, validate_spec
from raftsched.v1 import jobs_pb2

J = jobs_pb2


def spec(**fields: Any) -> jobs_pb2.JobSpec:
    fields.setdefault("handler", "noop")
    return J.JobSpec(**fields)


def test_a_good_spec_passes() -> None:
    validate_spec(spec(max_attempts=100, priority=-1000, slots=64, labels={"zone": "eu-1/a_b.c"},
                       depends_on=["j1", "j42"], payload=b"x" * (1 << 20)), {"noop"})
    validate_spec(J.JobSpec(command=["echo", "hi"]), None)


BAD = [
    ("handler", {"handler": ""}),  # neither command nor handler
    ("handler", {"command": ["x"]}),  # both
    ("handler", {"handler": "nope"}),  # unknown (known_handlers given)
    ("payload", {"payload": b"x" * ((1 << 20) + 1)}),
    ("max_attempts", {"max_attempts": 101}),
    ("priority", {"priority": 1001}),
    ("priority", {"priority": -1001}),
    ("labels", {"labels": {"": "v"}}),
    ("labels", {"labels": {"k": ""}}),
    ("labels", {"labels": {"k": "x" * 64}}),
    ("labels", {"labels": {"k y": "v"}}),
    ("slots", {"slots": 65}),
    ("name", {"name": "n" * 201}),
    ("idempotency_key", {"idempotency_key": "k" * 201}),
    ("depends_on", {"depends_on": ["job1"]}),
    ("depends_on", {"depends_on": ["j0"]}),
    ("backoff.multiplier", {"backoff": J.RetryBackoff(multiplier=0.5)}),
    ("backoff.multiplier", {"backoff": J.RetryBackoff(multiplier=float("nan"))}),
    ("backoff.max_ms", {"backoff": J.RetryBackoff(max_ms=10**12)}),
]


@pytest.mark.parametrize(("field", "fields"), BAD)
def test_errors_name_their_field(field: str, fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        validate_spec(spec(**fields), {"noop"})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_command_arguments_must_be_non_empty_strings() -> None:
    with pytest.raises(ValidationError, match=r"^command: argument 1 is empty"):
        validate_spec(J.JobSpec(command=["echo", ""]), None)


@given(st.builds(
    J.JobSpec,
    name=st.text(max_size=250),
    handler=st.sampled_from(["", "noop"]),
    command=st.lists(st.text(max_size=3), max_size=2),
    max_attempts=st.integers(0, 200),
    priority=st.integers(-2000, 2000),
    slots=st.integers(0, 100),
    depends_on=st.lists(st.text(max_size=4), max_size=2),
))
def test_any_spec_either_passes_or_names_a_real_field(s: jobs_pb2.JobSpec) -> None:
    try:
        validate_spec(s, None)
    except ValidationError as err:
        top = err.field.split(".")[0]
        assert top in J.JobSpec.DESCRIPTOR.fields_by_name
        assert str(err).startswith(err.field + ": ")

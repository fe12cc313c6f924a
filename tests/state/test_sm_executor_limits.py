"""Executor registrations out of their limits (issue 14): `validate_executor` names the field and
echoes at most 100 characters, and apply refuses a committed `executor_up` that breaks a rule
(counted as a refused command) without changing anything: no executor, no new handler names."""

from __future__ import annotations

from typing import Any

import pytest
from sm_harness import Node

from raftsched.quoting import ECHO_CHARS
from raftsched.security.tokens import EXECUTOR_ID_RE as TOKENS_EXECUTOR_ID_RE
from raftsched.state import commands as c
from raftsched.state.validate import (
    EXECUTOR_ID_RE,
    MAX_EXECUTOR_HANDLERS,
    MAX_EXECUTOR_LABELS,
    MAX_EXECUTOR_SLOTS,
    ValidationError,
    validate_executor,
)

OK: dict[str, Any] = {"executor_id": "e1", "slots": 4, "labels": {"zone": "eu-1", "gpu": ""}, "handlers": ["noop"]}

BAD = [
    pytest.param({"executor_id": ""}, "executor_id", id="empty-id"),
    pytest.param({"executor_id": "E" * 100_000}, "executor_id", id="100KB-id"),
    pytest.param({"executor_id": "e" * 129}, "executor_id", id="129-char-id"),
    pytest.param({"executor_id": "-e1"}, "executor_id", id="id-starts-with-dash"),
    pytest.param({"executor_id": ".e1"}, "executor_id", id="id-starts-with-dot"),
    pytest.param({"executor_id": "e1/../x"}, "executor_id", id="id-with-slash"),
    pytest.param({"executor_id": "e 1"}, "executor_id", id="id-with-space"),
    pytest.param({"executor_id": "é1"}, "executor_id", id="id-not-ascii"),
    pytest.param({"slots": 0}, "slots", id="no-slots"),
    pytest.param({"slots": MAX_EXECUTOR_SLOTS + 1}, "slots", id="1025-slots"),
    pytest.param({"slots": 2**32 - 1}, "slots", id="u32-max-slots"),
    pytest.param({"labels": {f"k{i}": "v" for i in range(MAX_EXECUTOR_LABELS + 1)}}, "labels", id="65-labels"),
    pytest.param({"labels": {"a b": "v"}}, "labels", id="label-key-space"),
    pytest.param({"labels": {"": "v"}}, "labels", id="label-key-empty"),
    pytest.param({"labels": {"k" * 64: "v"}}, "labels", id="label-key-64"),
    pytest.param({"labels": {"k": "v" * 64}}, "labels", id="label-value-64"),
    pytest.param({"labels": {"k": "<script>"}}, "labels", id="label-value-markup"),
    pytest.param({"handlers": [f"h{i}" for i in range(5000)]}, "handlers", id="5000-handlers"),
    pytest.param({"handlers": [f"h{i}" for i in range(MAX_EXECUTOR_HANDLERS + 1)]}, "handlers", id="257-handlers"),
    pytest.param({"handlers": [""]}, "handlers", id="handler-empty"),
    pytest.param({"handlers": ["h" * 129]}, "handlers", id="handler-129"),
    pytest.param({"handlers": ["rm -rf"]}, "handlers", id="handler-space"),
]


def test_a_registration_at_every_limit_is_valid() -> None:
    validate_executor(**OK)
    validate_executor("_" + "e" * 127, MAX_EXECUTOR_SLOTS, {f"k{i}": "v" * 63 for i in range(MAX_EXECUTOR_LABELS)},
                      [f"h.{i}/x-{i}" for i in range(MAX_EXECUTOR_HANDLERS)])
    validate_executor("1", 1, {}, [])


@pytest.mark.parametrize(("change", "field"), BAD)
def test_each_rule_names_its_field_and_echoes_at_most_100_characters(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_executor(**{**OK, **change})
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
    longest_input_run = max(len(run) for run in str(err.value).replace("'", " ").split())
    assert longest_input_run <= ECHO_CHARS + 10, str(err.value)[:300]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_apply_refuses_a_committed_executor_up_out_of_its_limits(node: Node, change: dict[str, Any],
                                                                 field: str) -> None:
    node.up("e0", slots=2, labels={"zone": "a"}, handlers=["known"])
    before = (node.state.executors(), node.state.known_handlers(), node.state.counters()["refused_commands"])
    fields = {**OK, **change}
    result = node.run(c.executor_up(fields["executor_id"], fields["slots"], fields["labels"], fields["handlers"]))
    assert result.code == 3 and result.error.startswith(f"executor_up: {field}: "), result.error[:300]
    assert len(result.error) < 400
    after = (node.state.executors(), node.state.known_handlers(), node.state.counters()["refused_commands"])
    assert after[:2] == before[:2]
    assert after[2] == before[2] + 1


def test_the_finding_a_100kb_id_with_5000_handlers_changes_nothing(node: Node) -> None:
    """Issue 14: this entry used to register, and its 5,000 names became valid job handlers."""
    hostile = c.executor_up("E" * 100_000, 2**32 - 1, {}, [f"h{i}" for i in range(5000)])
    assert "executor_id" in node.run(hostile).error
    assert node.state.executors() == []
    assert "h1" not in node.state.known_handlers()


def test_slots_are_kept_as_registered(node: Node) -> None:
    node.up("e1", slots=MAX_EXECUTOR_SLOTS)
    info = node.state.executor("e1")
    assert info is not None and info.slots == MAX_EXECUTOR_SLOTS


def test_the_token_table_uses_the_same_executor_id_rule() -> None:
    """security.tokens keeps its own copy (the web console must not import the state machine)."""
    assert TOKENS_EXECUTOR_ID_RE.pattern == EXECUTOR_ID_RE.pattern

"""Write-through persistence, replay, snapshot format and corruption, listeners, malformed entries."""

from __future__ import annotations

import logging

import pytest
from sm_harness import Node

from raftsched.state import commands as c
from raftsched.state.snapshot import SnapshotError
from raftsched.v1 import commands_pb2, jobs_pb2

J = jobs_pb2


def test_state_survives_reopen_and_replayed_entries_are_skipped(node: Node) -> None:
    node.up()
    a = node.submit(idempotency_key="k", timeout_ms=100)
    node.assign(a.id)
    before = node.state.snapshot()
    node.reopen()
    assert node.state.applied_index == len(node.log)
    assert node.state.snapshot() == before
    assert node.state.job_by_key("k") is not None
    assert [r.job_id for r in node.state.timed_out(2**64)] == [a.id]
    results = node.state.apply(list(enumerate(node.log, start=1)))
    assert results == [None] * len(node.log)
    assert node.state.snapshot() == before


def test_one_apply_call_is_one_batch_with_its_applied_index(node: Node) -> None:
    entries = [(1, c.encode(c.submit(J.JobSpec(handler="noop")), time_ms=5)), (2, None), (3, b"\xff")]
    results = node.state.apply(entries)
    assert results[1] is None and results[0] is not None and results[2] is not None
    assert results[2].code == 3 and "malformed" in results[2].error
    assert node.db.cf("sm_meta")[b"applied_index"] == (3).to_bytes(8, "big")


def test_unknown_version_and_empty_command_are_refused(node: Node) -> None:
    cmd = c.submit(J.JobSpec(handler="noop"))
    cmd.version = 2
    result = node.append(cmd.SerializeToString())
    assert result is not None and "version 2" in result.error
    result = node.append(c.encode(commands_pb2.Command(), time_ms=1))
    assert result is not None and result.code == 3
    assert node.state.counters()["refused_commands"] == 2
    assert node.state.counters()["jobs_total"] == 0


def test_snapshot_rejects_corruption_and_changes_nothing(node: Node) -> None:
    node.submit()
    blob = node.state.snapshot()
    before = node.state.snapshot()
    for bad in (blob[:-1], blob[:10], b"nope" + blob[4:], blob[:20] + bytes([blob[20] ^ 1]) + blob[21:]):
        with pytest.raises(SnapshotError):
            node.state.restore(bad)
    assert node.state.snapshot() == before


def test_restore_discards_earlier_state(node: Node) -> None:
    empty = node.state.snapshot()
    node.up()
    node.submit(idempotency_key="k")
    node.state.restore(empty)
    node.log.clear()  # the log continues after the snapshot's index
    assert node.state.applied_index == 0
    assert node.list_jobs() == ([], "")
    assert node.state.executors() == [] and node.state.job_by_key("k") is None
    assert node.submit().id == "j1"


def test_listeners_see_changed_jobs_and_cannot_break_apply(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, int]] = []

    def broken(job: jobs_pb2.Job) -> None:
        raise RuntimeError("watcher bug")

    node.state.add_listener(broken)
    node.state.add_listener(lambda job: seen.append((job.id, job.state)))
    node.up()
    a = node.submit()
    with caplog.at_level(logging.ERROR):
        node.assign(a.id)
    assert seen == [(a.id, J.JOB_STATE_QUEUED), (a.id, J.JOB_STATE_ASSIGNED)]
    assert "watcher bug" in caplog.text
    node.state.remove_listener(broken)
    node.run(c.cancel(a.id))
    assert seen[-1] == (a.id, J.JOB_STATE_CANCELLED)


def test_encode_sets_version_and_time_without_touching_the_caller() -> None:
    cmd = c.cancel("j1")
    data = c.encode(cmd, time_ms=42)
    decoded = c.decode(data)
    assert (decoded.version, decoded.time_ms, decoded.cancel.job_id) == (1, 42, "j1")
    assert cmd.version == 0
    up = c.executor_up("e1", slots=1, labels={"b": "2", "a": "1"})
    assert c.encode(up, time_ms=1) == c.encode(c.executor_up("e1", slots=1, labels={"a": "1", "b": "2"}), time_ms=1)


def test_list_jobs_rejects_a_foreign_page_token(node: Node) -> None:
    with pytest.raises(ValueError, match="page_token"):
        node.list_jobs(page_token="abc")

"""The --json shapes scripts rely on (SPEC §3) and the tables people read."""

from __future__ import annotations

import io
import json

from rich.console import Console

from raftsched.cli.output import job_detail, jobs_table, status_table, to_dict, to_json, watch_line
from raftsched.v1 import admin_pb2, jobs_pb2


def render(renderable: object) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(renderable)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_status_json_keeps_zero_values_and_enum_names() -> None:
    status = admin_pb2.StatusResponse(nodes=[
        admin_pb2.NodeStatus(id="n1", address="127.0.0.1:7001", role=admin_pb2.ROLE_LEADER, term=3,
                             leader="n1", commit_index=7, applied_index=7, healthy=True),
        admin_pb2.NodeStatus(id="n2", address="127.0.0.1:7002", error="connection refused"),
    ])
    line = to_json(status)
    assert "\n" not in line
    data = json.loads(line)
    first, second = data["nodes"]
    assert first["role"] == "ROLE_LEADER" and first["commitIndex"] == "7" and first["appliedIndex"] == "7"
    for key in ("id", "address", "role", "term", "leader", "commitIndex", "appliedIndex", "healthy"):
        assert key in second, key
    assert second["healthy"] is False and second["term"] == "0"


def test_job_json_has_id_and_state_name() -> None:
    job = jobs_pb2.Job(id="j1", state=jobs_pb2.JOB_STATE_SUCCEEDED, schedule_id="s1", scheduled_time=5)
    data = to_dict(job)
    assert data["id"] == "j1" and data["state"] == "JOB_STATE_SUCCEEDED"
    assert data["scheduleId"] == "s1" and data["scheduledTime"] == "5"


def test_tables_show_people_what_matters() -> None:
    attempt = jobs_pb2.Attempt(number=2, executor="e1", started_ms=1, finished_ms=2, exit_code=3,
                               error="boom", output_tail=b"line1\nline2\n", end=jobs_pb2.ATTEMPT_END_FAILED)
    job = jobs_pb2.Job(id="j9", spec=jobs_pb2.JobSpec(name="[red]x", handler="fail"),
                       state=jobs_pb2.JOB_STATE_FAILED, attempts=[attempt])
    detail = render(job_detail(job))
    assert "[red]x" in detail and "boom" in detail and "line2" in detail and "FAILED" in detail
    assert "e1" in render(jobs_table([job]))
    status = admin_pb2.StatusResponse(nodes=[admin_pb2.NodeStatus(id="n1", role=admin_pb2.ROLE_FOLLOWER)])
    assert "follower" in render(status_table(status))
    assert "attempt 2 on e1" in watch_line(job)

"""Every RPC as a plain value: which service and method, the request, and whether repeating it is
safe. The sync and asyncio clients run the same values, so they cannot drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from raftsched.jobstates import TERMINAL
from raftsched.v1 import admin_pb2, jobs_pb2, notify_pb2, scheduler_pb2

R = TypeVar("R")
Service = Literal["scheduler", "admin"]

TERMINAL_STATES = TERMINAL  # the name callers of the client know


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One RPC to make; R is the response type (a phantom, for the type checker)."""

    service: Service
    method: str
    request: object
    idempotent: bool


def with_idempotency_key(spec: jobs_pb2.JobSpec) -> jobs_pb2.JobSpec:
    """A copy of spec carrying a key, so a retried submit can never create a second job."""
    if spec.idempotency_key:
        return spec
    keyed = jobs_pb2.JobSpec()
    keyed.CopyFrom(spec)
    keyed.idempotency_key = uuid.uuid4().hex
    return keyed


def submit_job(spec: jobs_pb2.JobSpec) -> Call[scheduler_pb2.SubmitJobResponse]:
    request = scheduler_pb2.SubmitJobRequest(spec=with_idempotency_key(spec))
    return Call("scheduler", "SubmitJob", request, idempotent=True)


def submit_jobs(specs: Iterable[jobs_pb2.JobSpec]) -> Call[scheduler_pb2.SubmitJobsResponse]:
    request = scheduler_pb2.SubmitJobsRequest(specs=[with_idempotency_key(s) for s in specs])
    return Call("scheduler", "SubmitJobs", request, idempotent=True)


def get_job(job_id: str, stale: bool = False) -> Call[jobs_pb2.Job]:
    return Call("scheduler", "GetJob", scheduler_pb2.GetJobRequest(id=job_id, stale=stale), True)


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What `ListJobs` may narrow a listing by besides state and schedule (SPEC §4)."""

    newest_first: bool = False
    created_after_ms: int = 0  # submitted at or after
    created_before_ms: int = 0  # submitted before
    name: str = ""  # the job's name contains this
    labels: Mapping[str, str] = field(default_factory=dict)  # the job's labels include these


def list_jobs(state: int = jobs_pb2.JOB_STATE_UNSPECIFIED, schedule: str = "", page_size: int = 0,
              page_token: str = "", stale: bool = False, where: JobFilter | None = None,
              ) -> Call[scheduler_pb2.ListJobsResponse]:
    where = where or JobFilter()
    request = scheduler_pb2.ListJobsRequest(
        state=state, schedule=schedule, page_size=page_size, page_token=page_token, stale=stale,  # type: ignore[arg-type]
        newest_first=where.newest_first, created_after_ms=where.created_after_ms,
        created_before_ms=where.created_before_ms, name=where.name, labels=dict(where.labels))
    return Call("scheduler", "ListJobs", request, True)


def cancel_job(job_id: str, reason: str = "") -> Call[jobs_pb2.Job]:
    # Cancelling twice ends the same way, so a repeat after a lost answer is harmless.
    return Call("scheduler", "CancelJob", scheduler_pb2.CancelJobRequest(id=job_id, reason=reason), True)


def watch_job(job_id: str) -> Call[jobs_pb2.Job]:
    return Call("scheduler", "WatchJob", scheduler_pb2.WatchJobRequest(id=job_id), True)


def check_fence(job_id: str, attempt: int) -> Call[scheduler_pb2.CheckFenceResponse]:
    request = scheduler_pb2.CheckFenceRequest(job_id=job_id, attempt=attempt)
    return Call("scheduler", "CheckFence", request, True)


def list_executors(stale: bool = False) -> Call[scheduler_pb2.ListExecutorsResponse]:
    return Call("scheduler", "ListExecutors", scheduler_pb2.ListExecutorsRequest(stale=stale), True)


def drain_executor(executor_id: str) -> Call[jobs_pb2.ExecutorInfo]:
    return Call("scheduler", "DrainExecutor", scheduler_pb2.DrainExecutorRequest(id=executor_id), True)


def release_executor(executor_id: str) -> Call[jobs_pb2.ExecutorInfo]:
    return Call("scheduler", "ReleaseExecutor", scheduler_pb2.ReleaseExecutorRequest(id=executor_id), True)


def create_schedule(spec: scheduler_pb2.ScheduleSpec) -> Call[scheduler_pb2.Schedule]:
    # Not idempotent: a repeat after a lost answer reports ALREADY_EXISTS.
    return Call("scheduler", "CreateSchedule", scheduler_pb2.CreateScheduleRequest(spec=spec), False)


def list_schedules(stale: bool = False) -> Call[scheduler_pb2.ListSchedulesResponse]:
    return Call("scheduler", "ListSchedules", scheduler_pb2.ListSchedulesRequest(stale=stale), True)


def get_schedule(name: str, stale: bool = False) -> Call[scheduler_pb2.Schedule]:
    return Call("scheduler", "GetSchedule", scheduler_pb2.GetScheduleRequest(name=name, stale=stale), True)


def pause_schedule(name: str, note: str = "") -> Call[scheduler_pb2.Schedule]:
    return Call("scheduler", "PauseSchedule", scheduler_pb2.PauseScheduleRequest(name=name, note=note), True)


def resume_schedule(name: str) -> Call[scheduler_pb2.Schedule]:
    return Call("scheduler", "ResumeSchedule", scheduler_pb2.ResumeScheduleRequest(name=name), True)


def trigger_schedule(name: str) -> Call[jobs_pb2.Job]:
    return Call("scheduler", "TriggerSchedule", scheduler_pb2.TriggerScheduleRequest(name=name), False)


def delete_schedule(name: str) -> Call[scheduler_pb2.DeleteScheduleResponse]:
    return Call("scheduler", "DeleteSchedule", scheduler_pb2.DeleteScheduleRequest(name=name), False)


def status(local_only: bool = False) -> Call[admin_pb2.StatusResponse]:
    return Call("admin", "Status", admin_pb2.StatusRequest(local_only=local_only), True)


def list_alarms(stale: bool = False) -> Call[admin_pb2.ListAlarmsResponse]:
    return Call("admin", "ListAlarms", admin_pb2.ListAlarmsRequest(stale=stale), True)


def list_members() -> Call[admin_pb2.ListMembersResponse]:
    return Call("admin", "ListMembers", admin_pb2.ListMembersRequest(), True)


def add_member(member_id: str, address: str, learner: bool = False) -> Call[admin_pb2.ListMembersResponse]:
    request = admin_pb2.AddMemberRequest(id=member_id, address=address, learner=learner)
    return Call("admin", "AddMember", request, False)


def promote_member(member_id: str) -> Call[admin_pb2.ListMembersResponse]:
    return Call("admin", "PromoteMember", admin_pb2.PromoteMemberRequest(id=member_id), False)


def remove_member(member_id: str) -> Call[admin_pb2.ListMembersResponse]:
    return Call("admin", "RemoveMember", admin_pb2.RemoveMemberRequest(id=member_id), False)


def transfer_leader(target: str = "") -> Call[admin_pb2.TransferLeaderResponse]:
    return Call("admin", "TransferLeader", admin_pb2.TransferLeaderRequest(target=target), False)


def save_snapshot() -> Call[admin_pb2.SnapshotChunk]:
    return Call("admin", "SaveSnapshot", admin_pb2.SaveSnapshotRequest(), True)


def read_log(from_index: int = 0, limit: int = 0) -> Call[admin_pb2.ReadLogResponse]:
    return Call("admin", "ReadLog", admin_pb2.ReadLogRequest(from_index=from_index, limit=limit), True)


def add_notify_sink(name: str, url: str, secret: bytes = b"", events: Iterable[str] = (),
                    ) -> Call[notify_pb2.NotifySink]:
    request = admin_pb2.AddNotifySinkRequest(name=name, url=url, secret=secret, events=list(events))
    return Call("admin", "AddNotifySink", request, False)


def list_notify_sinks(stale: bool = False) -> Call[admin_pb2.ListNotifySinksResponse]:
    return Call("admin", "ListNotifySinks", admin_pb2.ListNotifySinksRequest(stale=stale), True)


def remove_notify_sink(name: str) -> Call[admin_pb2.RemoveNotifySinkResponse]:
    return Call("admin", "RemoveNotifySink", admin_pb2.RemoveNotifySinkRequest(name=name), False)


def test_notify_sink(name: str) -> Call[admin_pb2.TestNotifySinkResponse]:
    return Call("admin", "TestNotifySink", admin_pb2.TestNotifySinkRequest(name=name), False)

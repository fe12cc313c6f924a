"""The role table: which role may call which RPC. Pure data and lookups, no gRPC.

    role       | may call
    -----------+-------------------------------------------------------------------------------
    admin      | every Scheduler and Admin RPC (membership, leader transfer, snapshots, ReadLog,
               | DrainExecutor, ReleaseExecutor, notification sinks included)
    submitter  | Scheduler writes (SubmitJob(s), CancelJob, schedule create/pause/resume/trigger/
               | delete) and every read below
    reader     | reads: GetJob, ListJobs, WatchJob, CheckFence, ListExecutors, ListSchedules,
               | GetSchedule, Admin.Status, Admin.ListMembers
    executor   | Executor.Connect only
    peer       | the Raft service; Admin.Status and ListMembers (status fan-out, --join);
               | PromoteMember (a node rebuilt from its peers promotes itself once caught up);
               | and a call a follower forwards to the leader, judged by the original caller's role
    (any)      | grpc.health.v1.Health and server reflection, once authenticated

Anything not in the table is refused (deny by default). The Raft service is open to `peer` alone,
and `peer` comes only from a node certificate, never from a token.
"""

from __future__ import annotations

ADMIN = "admin"
SUBMITTER = "submitter"
READER = "reader"
EXECUTOR = "executor"
PEER = "peer"

ROLES = frozenset({ADMIN, SUBMITTER, READER, EXECUTOR, PEER})
TOKEN_ROLES = frozenset({ADMIN, SUBMITTER, READER, EXECUTOR})  # peer only ever from a node certificate
CLIENT_ROLES = frozenset({ADMIN, SUBMITTER, READER})  # roles a forwarded call may act for

_SCHEDULER = "/raftsched.v1.Scheduler/"
_ADMIN = "/raftsched.v1.Admin/"
_RAFT = "/raftsched.v1.Raft/"
_EXECUTOR = "/raftsched.v1.Executor/"

_READ = frozenset({ADMIN, SUBMITTER, READER})
_WRITE = frozenset({ADMIN, SUBMITTER})
_OPERATE = frozenset({ADMIN})
_ANY = ROLES

RULES: dict[str, frozenset[str]] = {
    **{_RAFT + m: frozenset({PEER}) for m in ("RequestVote", "AppendEntries", "InstallSnapshot", "TimeoutNow")},
    _EXECUTOR + "Connect": frozenset({EXECUTOR}),
    **{_SCHEDULER + m: _READ for m in ("GetJob", "ListJobs", "WatchJob", "CheckFence", "ListExecutors",
                                       "ListSchedules", "GetSchedule")},
    **{_SCHEDULER + m: _WRITE for m in ("SubmitJob", "SubmitJobs", "SubmitJobStream", "CancelJob", "CreateSchedule",
                                        "PauseSchedule", "ResumeSchedule", "TriggerSchedule", "DeleteSchedule")},
    _SCHEDULER + "DrainExecutor": _OPERATE,
    _SCHEDULER + "ReleaseExecutor": _OPERATE,
    _ADMIN + "Status": _READ | {PEER},
    _ADMIN + "ListMembers": _READ | {PEER},
    _ADMIN + "ListAlarms": _READ | {PEER},
    _ADMIN + "StateHash": _READ | {PEER},  # the leader asks every node for its hash at a check
    **{_ADMIN + m: _OPERATE for m in ("AddMember", "RemoveMember", "TransferLeader", "SaveSnapshot", "ReadLog")},
    # A node that speaks Raft could do more than this already; the leader still waits for its log.
    _ADMIN + "PromoteMember": _OPERATE | {PEER},
    # Sink URLs may carry credentials (many webhook URLs are secrets): admin only, listing too.
    **{_ADMIN + m: _OPERATE for m in ("AddNotifySink", "ListNotifySinks", "RemoveNotifySink", "TestNotifySink")},
}

# Whole services open to every authenticated identity: health checks and reflection carry no data.
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                 "/grpc.reflection.v1.ServerReflection/")


def allowed_roles(method: str) -> frozenset[str]:
    """The roles that may call `method` ("/package.Service/Method"); empty when none may."""
    rule = RULES.get(method)
    if rule is not None:
        return rule
    if method.startswith(OPEN_SERVICES):
        return _ANY
    return frozenset()


def may_call(role: str | None, method: str) -> bool:
    return role is not None and role in allowed_roles(method)


def forwardable(method: str) -> bool:
    """Calls a follower may forward to the leader on a client's behalf (client-facing services)."""
    return method.startswith((_SCHEDULER, _ADMIN))


def is_raft(method: str) -> bool:
    return method.startswith(_RAFT)

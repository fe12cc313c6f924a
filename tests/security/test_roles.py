"""The role table: every RPC has a rule, the Raft service is for peers alone, deny by default."""

from __future__ import annotations

import pytest

from raftsched.security import roles
from raftsched.v1 import admin_pb2, executor_pb2, raft_pb2, scheduler_pb2


def _methods(descriptor: object, service: str) -> list[str]:
    svc = descriptor.services_by_name[service]  # type: ignore[attr-defined]
    return [f"/{svc.full_name}/{m.name}" for m in svc.methods]


RAFT = _methods(raft_pb2.DESCRIPTOR, "Raft")
SCHEDULER = _methods(scheduler_pb2.DESCRIPTOR, "Scheduler")
ADMIN = _methods(admin_pb2.DESCRIPTOR, "Admin")
EXECUTOR = _methods(executor_pb2.DESCRIPTOR, "Executor")


def test_every_rpc_of_every_service_has_a_rule() -> None:
    for method in [*RAFT, *SCHEDULER, *ADMIN, *EXECUTOR]:
        assert roles.allowed_roles(method), f"{method} has no rule: nobody could call it"
    assert set(roles.RULES) == {*RAFT, *SCHEDULER, *ADMIN, *EXECUTOR}, "a rule names a method that does not exist"


@pytest.mark.parametrize("method", RAFT)
def test_the_raft_service_is_for_peers_only(method: str) -> None:
    assert roles.allowed_roles(method) == {roles.PEER}


@pytest.mark.parametrize("method", EXECUTOR)
def test_the_executor_service_is_for_executors_only(method: str) -> None:
    assert roles.allowed_roles(method) == {roles.EXECUTOR}


def test_executors_may_call_nothing_but_the_executor_service() -> None:
    for method in [*RAFT, *SCHEDULER, *ADMIN]:
        assert not roles.may_call(roles.EXECUTOR, method), method


@pytest.mark.parametrize(("role", "method", "allowed"), [
    ("admin", "/raftsched.v1.Admin/AddMember", True),
    ("admin", "/raftsched.v1.Admin/SaveSnapshot", True),
    ("admin", "/raftsched.v1.Admin/TransferLeader", True),
    ("admin", "/raftsched.v1.Scheduler/SubmitJob", True),
    ("admin", "/raftsched.v1.Raft/AppendEntries", False),
    ("submitter", "/raftsched.v1.Scheduler/SubmitJob", True),
    ("submitter", "/raftsched.v1.Scheduler/CancelJob", True),
    ("submitter", "/raftsched.v1.Scheduler/GetJob", True),
    ("submitter", "/raftsched.v1.Admin/AddMember", False),
    ("submitter", "/raftsched.v1.Admin/RemoveMember", False),
    ("submitter", "/raftsched.v1.Admin/SaveSnapshot", False),
    ("submitter", "/raftsched.v1.Scheduler/DrainExecutor", False),
    ("reader", "/raftsched.v1.Scheduler/ListJobs", True),
    ("reader", "/raftsched.v1.Scheduler/WatchJob", True),
    ("reader", "/raftsched.v1.Admin/Status", True),
    ("reader", "/raftsched.v1.Scheduler/SubmitJob", False),
    ("reader", "/raftsched.v1.Scheduler/CancelJob", False),
    ("peer", "/raftsched.v1.Raft/RequestVote", True),
    ("peer", "/raftsched.v1.Admin/Status", True),
    ("peer", "/raftsched.v1.Scheduler/SubmitJob", False),
    ("peer", "/raftsched.v1.Executor/Connect", False),
    (None, "/raftsched.v1.Admin/Status", False),
])
def test_role_table(role: str | None, method: str, allowed: bool) -> None:
    assert roles.may_call(role, method) is allowed


def test_health_and_reflection_are_open_to_every_role_and_unknown_methods_to_none() -> None:
    for role in roles.ROLES:
        assert roles.may_call(role, "/grpc.health.v1.Health/Check")
        assert roles.may_call(role, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        assert not roles.may_call(role, "/raftsched.v1.Scheduler/NoSuchMethod")
        assert not roles.may_call(role, "/other.Service/Call")


def test_peer_is_never_a_token_or_forwarded_role() -> None:
    assert roles.PEER not in roles.TOKEN_ROLES
    assert roles.PEER not in roles.CLIENT_ROLES and roles.EXECUTOR not in roles.CLIENT_ROLES

"""The clients' typed errors (raftsched.client.errors), against small real gRPC servers on
127.0.0.1: not-leader, unavailable (certainly not applied) and outcome-unknown are told apart by
type, and the server side (raftsched.api.errors) marks an unknown outcome so they can be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from raftsched.api.errors import guarded
from raftsched.client import (
    AsyncClient,
    Client,
    ClientError,
    NotLeaderError,
    OutcomeUnknownError,
    UnavailableError,
)
from raftsched.raft_driver import OutcomeUnknownError as DriverOutcomeUnknown
from raftsched.raft_driver import ProposalLostError
from raftsched.v1 import admin_pb2, admin_pb2_grpc, jobs_pb2, scheduler_pb2_grpc

add_scheduler: Any = scheduler_pb2_grpc.add_SchedulerServicer_to_server
add_admin: Any = admin_pb2_grpc.add_AdminServicer_to_server


class Failing(scheduler_pb2_grpc.SchedulerServicer):
    """Every call fails the way a node's servicer fails (through raftsched.api.errors.guarded)."""

    def __init__(self) -> None:
        self.calls = 0

    @guarded
    async def SubmitJob(self, request: Any, context: Any) -> Any:
        self.calls += 1
        raise DriverOutcomeUnknown("entry 7 not applied within 10 s")

    @guarded
    async def CancelJob(self, request: Any, context: Any) -> Any:
        raise ProposalLostError("entry 7 was replaced by another leader")

    async def GetJob(self, request: Any, context: Any) -> Any:
        context.set_trailing_metadata((("raftsched-leader", ""),))  # a follower that knows no leader
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the leader")

    async def ListJobs(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


class Backup(admin_pb2_grpc.AdminServicer):
    async def SaveSnapshot(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for i in range(3):
            yield admin_pb2.SnapshotChunk(data=bytes([i]) * 1000)


async def serve(servicer: Any, add: Any) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def test_the_async_client_tells_the_outcomes_apart_by_type() -> None:
    servicer = Failing()
    server, address = await serve(servicer, add_scheduler)
    try:
        async with AsyncClient([address], timeout=0.3) as client:
            with pytest.raises(OutcomeUnknownError) as unknown:
                await client.submit_job(jobs_pb2.JobSpec(handler="noop"))
            assert unknown.value.code == "UNAVAILABLE" and servicer.calls >= 1
            with pytest.raises(UnavailableError) as lost:
                await client.cancel_job("j1")
            assert not isinstance(lost.value, OutcomeUnknownError)
            with pytest.raises(NotLeaderError) as not_leader:
                await client.get_job("j1")
            assert not_leader.value.leader == "" and not_leader.value.code == "FAILED_PRECONDITION"
            with pytest.raises(ClientError) as other:
                await client.list_jobs()
            assert type(other.value) is ClientError and other.value.code == "NOT_FOUND"
    finally:
        await server.stop(None)


async def test_the_sync_client_raises_the_same_types() -> None:
    server, address = await serve(Failing(), add_scheduler)
    try:
        with Client([address], timeout=0.3) as client:
            # The sync client blocks: run it in a thread so this loop keeps serving.
            unknown = await asyncio.to_thread(_raised, client.submit_job, jobs_pb2.JobSpec(handler="noop"))
            lost = await asyncio.to_thread(_raised, client.cancel_job, "j1")
            not_leader = await asyncio.to_thread(_raised, client.get_job, "j1")
        assert isinstance(unknown, OutcomeUnknownError)
        assert isinstance(lost, UnavailableError) and not isinstance(lost, OutcomeUnknownError)
        assert isinstance(not_leader, NotLeaderError)
    finally:
        await server.stop(None)


def _raised(fn: Any, *args: Any) -> ClientError:
    try:
        fn(*args)
    except ClientError as err:
        return err
    raise AssertionError(f"{fn.__name__} did not fail")


async def test_the_async_client_saves_a_snapshot_with_progress(tmp_path: Path) -> None:
    server, address = await serve(Backup(), add_admin)
    seen: list[int] = []
    try:
        async with AsyncClient([address], timeout=5) as client:
            size = await client.save_snapshot(str(tmp_path / "b.rss"), progress=seen.append)
    finally:
        await server.stop(None)
    assert size == 3000 and seen == [1000, 2000, 3000]
    assert (tmp_path / "b.rss").read_bytes() == b"\0" * 1000 + b"\1" * 1000 + b"\2" * 1000
    assert not (tmp_path / "b.rss.partial").exists()

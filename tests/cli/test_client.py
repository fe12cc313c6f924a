"""Leader following and retries of the clients, against small real gRPC servers on 127.0.0.1:
a follower that refuses with FAILED_PRECONDITION and a leader hint, and a leader that serves."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import pytest

from raftsched.client import AsyncClient, Client, ClientError
from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

# The generated helpers are untyped.
add_servicer: Any = scheduler_pb2_grpc.add_SchedulerServicer_to_server


class Follower(scheduler_pb2_grpc.SchedulerServicer):
    def __init__(self, leader: str) -> None:
        self.leader = leader
        self.calls = 0

    def SubmitJob(self, request: Any, context: Any) -> Any:
        self.calls += 1
        context.set_trailing_metadata((("raftsched-leader", self.leader),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the leader")


class Leader(scheduler_pb2_grpc.SchedulerServicer):
    def __init__(self, unavailable_first: int = 0) -> None:
        self.keys: list[str] = []
        self.unavailable_first = unavailable_first
        self.get_calls = 0

    def SubmitJob(self, request: Any, context: Any) -> Any:
        self.keys.append(request.spec.idempotency_key)
        if self.unavailable_first > 0:
            self.unavailable_first -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "no quorum")
        return scheduler_pb2.SubmitJobResponse(job=jobs_pb2.Job(id="j1", spec=request.spec,
                                                                state=jobs_pb2.JOB_STATE_QUEUED))

    def GetJob(self, request: Any, context: Any) -> Any:
        self.get_calls += 1
        context.abort(grpc.StatusCode.NOT_FOUND, f"no job with id {request.id!r}")

    def CancelJob(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "job already finished")

    def ListJobs(self, request: Any, context: Any) -> Any:
        start = int(request.page_token or 0)
        jobs = [jobs_pb2.Job(id=f"j{i}") for i in range(start, min(start + 2, 5))]
        token = str(start + 2) if start + 2 < 5 else ""
        return scheduler_pb2.ListJobsResponse(jobs=jobs, next_page_token=token)


def serve(servicer: Any) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_servicer(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def dead_address() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "{}:{}".format(*s.getsockname())


@pytest.fixture
def leader() -> Iterator[tuple[Leader, str]]:
    servicer = Leader()
    server, address = serve(servicer)
    yield servicer, address
    server.stop(None)


@pytest.fixture
def follower(leader: tuple[Leader, str]) -> Iterator[tuple[Follower, str]]:
    servicer = Follower(leader[1])
    server, address = serve(servicer)
    yield servicer, address
    server.stop(None)


def test_follows_the_leader_hint_and_remembers_it(leader: tuple[Leader, str],
                                                  follower: tuple[Follower, str]) -> None:
    with Client([follower[1]], timeout=5) as client:
        response = client.submit_job(jobs_pb2.JobSpec(handler="noop"))
        assert response.job.id == "j1"
        assert client.leader == leader[1]
        client.submit_job(jobs_pb2.JobSpec(handler="noop"))
    assert follower[0].calls == 1  # the second call went straight to the leader
    assert len(leader[0].keys) == 2 and all(len(k) == 32 for k in leader[0].keys)


def test_a_retried_submit_carries_the_same_idempotency_key(leader: tuple[Leader, str]) -> None:
    leader[0].unavailable_first = 2
    with Client([leader[1]], timeout=5) as client:
        assert client.submit_job(jobs_pb2.JobSpec(handler="noop")).job.id == "j1"
    assert len(leader[0].keys) == 3 and len(set(leader[0].keys)) == 1


def test_a_given_idempotency_key_is_kept(leader: tuple[Leader, str]) -> None:
    with Client([leader[1]], timeout=5) as client:
        client.submit_job(jobs_pb2.JobSpec(handler="noop", idempotency_key="mine"))
    assert leader[0].keys == ["mine"]


def test_an_unreachable_node_is_skipped(leader: tuple[Leader, str]) -> None:
    with Client([dead_address(), leader[1]], timeout=5) as client:
        assert client.submit_job(jobs_pb2.JobSpec(handler="noop")).job.id == "j1"


def test_errors_carry_code_and_server_message_without_retry(leader: tuple[Leader, str]) -> None:
    with Client([leader[1]], timeout=5) as client:
        with pytest.raises(ClientError) as err:
            client.get_job("j404")
        assert err.value.code == "NOT_FOUND" and "j404" in err.value.message
        with pytest.raises(ClientError) as err:
            client.cancel_job("j1")  # FAILED_PRECONDITION without a hint is the request's fault
        assert err.value.code == "FAILED_PRECONDITION"
    assert leader[0].get_calls == 1


def test_an_unreachable_cluster_fails_within_the_deadline() -> None:
    started = time.monotonic()
    with Client([dead_address(), dead_address()], timeout=0.7) as client, pytest.raises(ClientError) as err:
        client.status()
    assert err.value.code == "UNAVAILABLE"
    assert time.monotonic() - started < 3


def test_iter_jobs_follows_page_tokens(leader: tuple[Leader, str]) -> None:
    with Client([leader[1]], timeout=5) as client:
        assert [j.id for j in client.iter_jobs()] == ["j0", "j1", "j2", "j3", "j4"]


class AsyncFollower(scheduler_pb2_grpc.SchedulerServicer):
    def __init__(self, leader: str) -> None:
        self.leader = leader

    async def SubmitJob(self, request: Any, context: Any) -> Any:
        context.set_trailing_metadata((("raftsched-leader", self.leader),))
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the leader")


class AsyncLeader(scheduler_pb2_grpc.SchedulerServicer):
    async def SubmitJob(self, request: Any, context: Any) -> Any:
        return scheduler_pb2.SubmitJobResponse(job=jobs_pb2.Job(id="a1", spec=request.spec))


async def aio_serve(servicer: Any) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    add_servicer(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def test_async_client_follows_the_leader_hint() -> None:
    leader_server, leader_address = await aio_serve(AsyncLeader())
    follower_server, follower_address = await aio_serve(AsyncFollower(leader_address))
    try:
        async with AsyncClient([dead_address(), follower_address], timeout=5) as client:
            response = await client.submit_job(jobs_pb2.JobSpec(handler="noop"))
            assert response.job.id == "a1" and response.job.spec.idempotency_key
            assert client.leader == leader_address
    finally:
        await follower_server.stop(None)
        await leader_server.stop(None)

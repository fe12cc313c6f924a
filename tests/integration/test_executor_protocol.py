"""The leader's side of the Executor protocol, driven by a hand-written executor over the real
Connect stream, to provoke orderings a real executor makes only by chance (found by `make chaos`).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from raftsched.scheduler.dispatcher import RESEND_AFTER_MS
from raftsched.v1 import executor_pb2 as E
from raftsched.v1 import executor_pb2_grpc, jobs_pb2

from .cluster import state_name, wait_for

pytestmark = pytest.mark.integration


def _hello(seq: int) -> E.ExecutorMessage:
    """What an executor sends first on a stream: register (running nothing) with a heartbeat."""
    return E.ExecutorMessage(register=E.Register(executor_id="e9", slots=1, handlers=["noop"]),
                             heartbeat=E.Heartbeat(seq=seq))


async def _register(stub: executor_pb2_grpc.ExecutorStub, seq: int, timeout: float = 10.0,
                    ) -> tuple[grpc.aio.StreamStreamCall, E.LeaderMessage]:
    """Connect as e9 and wait for the leader's answer, retrying ALREADY_EXISTS as a real executor
    does: the leader holds the id until it has seen the previous stream close, which a loaded
    machine delays (seen under make test: 2.5 s after the cancel)."""
    deadline = time.monotonic() + timeout
    while True:
        call = stub.Connect()
        await call.write(_hello(seq))
        try:
            return call, await _next(call, "heartbeat_ack", max(0.1, deadline - time.monotonic()))
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def _next(call: grpc.aio.StreamStreamCall, want: str, timeout: float) -> E.LeaderMessage:
    """The next leader message carrying `want` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await call.read()
            assert msg is not grpc.aio.EOF, "the leader closed the stream"
            if getattr(msg, want):
                return msg


async def test_an_assignment_the_executor_never_got_is_fenced_at_re_register_and_not_sent_again(make_cluster):
    c = make_cluster()
    leader = c.wait_leader()
    client = c.client()
    async with grpc.aio.insecure_channel(c.addr[leader]) as channel:
        stub = executor_pb2_grpc.ExecutorStub(channel)
        first = stub.Connect()
        await first.write(_hello(1))
        await _next(first, "heartbeat_ack", 10)
        job = client.submit_job(jobs_pb2.JobSpec(handler="noop", name="lost-in-flight")).job
        assigned = (await _next(first, "assign", 10)).assign
        assert [(a.job_id, a.attempt) for a in assigned] == [(job.id, 1)]
        first.cancel()  # as if the stream broke before the assignment reached the executor

        # Old enough that a heartbeat not listing it would count it as lost on the way.
        await asyncio.sleep(RESEND_AFTER_MS / 1000 + 0.5)
        second, answer = await _register(stub, 2)
        resent: list[tuple[str, int]] = [(a.job_id, a.attempt) for a in answer.assign]
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                msg = await _next(second, "assign", deadline - time.monotonic())
            except TimeoutError:
                break
            resent += [(a.job_id, a.attempt) for a in msg.assign]
        second.cancel()
    # Attempt 1 ended FENCED (its next attempt may have come to e9: that one is new and fine)...
    assert (job.id, 1) not in resent, f"attempt 1 was sent again while it was being fenced: {resent}"
    record = wait_for(lambda: _first_ended(client, job.id), 10, "attempt 1 ended")
    first_attempt = record.attempts[0]
    assert jobs_pb2.AttemptEnd.Name(first_attempt.end) == "ATTEMPT_END_FENCED", state_name(record)
    assert "re-registered without this attempt" in first_attempt.error


def _first_ended(client, job_id: str) -> jobs_pb2.Job | None:
    job = client.get_job(job_id)
    return job if job.attempts and job.attempts[0].end else None

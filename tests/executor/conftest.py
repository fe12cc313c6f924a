"""A scripted leader: a real grpc.aio Executor servicer on 127.0.0.1 that records what the agent
sends and answers as the test tells it to. It plays the leader's side of the protocol described in
raftsched/executor/agent.py; it is a gRPC peer, not a mock of the agent."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest

from raftsched.config import ExecutorConfig
from raftsched.executor import Executor, HandlerRegistry
from raftsched.v1 import executor_pb2 as epb
from raftsched.v1 import executor_pb2_grpc as epb_grpc
from raftsched.v1 import jobs_pb2 as jpb

WAIT_S = 10.0  # the upper bound of any single wait in these tests


@dataclass
class Stream:
    """One Connect call as the leader saw it."""

    register: epb.Register
    outbox: asyncio.Queue[epb.LeaderMessage | None] = field(default_factory=lambda: asyncio.Queue(100))


class FakeLeader(epb_grpc.ExecutorServicer):
    def __init__(self, *, leader_id: str = "n1", lease_ms: int = 600) -> None:
        self.leader_id = leader_id
        self.lease_ms = lease_ms
        self.ack_heartbeats = True
        self.ack_results = True
        self.redirect_to: str | None = None  # when set: refuse as a follower naming this leader
        self.refusals = 0
        self.streams: list[Stream] = []
        self.heartbeats: list[epb.Heartbeat] = []
        self.started: list[tuple[str, int]] = []
        self.finished: list[epb.TaskFinished] = []
        self.reports: list[epb.ExecutorMessage] = []  # every message with started or finished items
        self._changed = asyncio.Event()

    # -- what the test calls --------------------------------------------------------------

    def send(self, **fields: Any) -> None:
        self.streams[-1].outbox.put_nowait(epb.LeaderMessage(**fields))

    def assign(self, job_id: str, attempt: int = 1, **spec: Any) -> None:
        self.send(assign=[epb.Assignment(job_id=job_id, attempt=attempt, spec=jpb.JobSpec(**spec))])

    def cancel(self, job_id: str, attempt: int = 1) -> None:
        self.send(cancel=[jpb.AttemptRef(job_id=job_id, attempt=attempt)])

    def break_stream(self) -> None:
        """End the current call with status OK: the agent sees the stream close."""
        self.streams[-1].outbox.put_nowait(None)

    def result(self, job_id: str, attempt: int = 1) -> epb.TaskFinished | None:
        return next((f for f in self.finished if (f.job_id, f.attempt) == (job_id, attempt)), None)

    async def wait_for(self, predicate: Callable[[], object], timeout: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                changed = self._changed
                await changed.wait()

    async def wait_result(self, job_id: str, attempt: int = 1, timeout: float = WAIT_S) -> epb.TaskFinished:
        await self.wait_for(lambda: self.result(job_id, attempt), timeout)
        result = self.result(job_id, attempt)
        assert result is not None
        return result

    # -- the servicer ---------------------------------------------------------------------

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        if self.redirect_to is not None:
            self.refusals += 1
            self._notify()
            context.set_trailing_metadata((("raftsched-leader", self.redirect_to),))
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the leader")
        first = await context.read()
        assert isinstance(first, epb.ExecutorMessage) and first.HasField("register")
        stream = Stream(register=first.register)
        self.streams.append(stream)
        reply = epb.LeaderMessage(leader_id=self.leader_id)
        self._record(first, reply)
        await context.write(reply)
        reader = asyncio.create_task(self._read(context, stream))
        try:
            while (msg := await stream.outbox.get()) is not None:
                await context.write(msg)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, context: grpc.aio.ServicerContext, stream: Stream) -> None:
        while (msg := await context.read()) is not grpc.aio.EOF:
            reply = epb.LeaderMessage()
            self._record(msg, reply)
            if reply.ByteSize():
                stream.outbox.put_nowait(reply)

    def _record(self, msg: epb.ExecutorMessage, reply: epb.LeaderMessage) -> None:
        if msg.HasField("heartbeat"):
            self.heartbeats.append(msg.heartbeat)
            if self.ack_heartbeats:
                reply.heartbeat_ack.seq = msg.heartbeat.seq
                reply.heartbeat_ack.lease_ms = self.lease_ms
        if msg.started or msg.finished:
            self.reports.append(msg)
        self.started.extend((s.job_id, s.attempt) for s in msg.started)
        results = list(msg.finished) + list(msg.register.unacked)
        self.finished.extend(msg.finished)
        if self.ack_results:
            reply.acked.extend(jpb.AttemptRef(job_id=f.job_id, attempt=f.attempt) for f in results)
        self._notify()


async def start_server(leader: FakeLeader) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    epb_grpc.add_ExecutorServicer_to_server(leader, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def leader() -> AsyncIterator[tuple[FakeLeader, str]]:
    fake = FakeLeader()
    server, address = await start_server(fake)
    try:
        yield fake, address
    finally:
        await server.stop(0)


def make_config(address: str, **overrides: Any) -> ExecutorConfig:
    values: dict[str, Any] = dict(
        id="e1", cluster=(address,), slots=4, labels={"zone": "a"}, heartbeat_ms=100, lease_ms=600,
        kill_grace_ms=300, output_tail_bytes=4096, drain_ack_timeout_ms=2000,
    )
    values.update(overrides)
    return ExecutorConfig(**values)


@contextlib.asynccontextmanager
async def running_executor(config: ExecutorConfig, registry: HandlerRegistry | None = None
                           ) -> AsyncIterator[Executor]:
    """An Executor running in this loop; stopped (its tasks killed) however the test ends."""
    executor = Executor(config, handlers=registry or HandlerRegistry())
    task = asyncio.create_task(executor.run())
    try:
        yield executor
    finally:
        executor.stop()
        async with asyncio.timeout(WAIT_S):
            await asyncio.gather(task, return_exceptions=True)


def live_group_members(pgid: int) -> list[int]:
    """Pids in process group `pgid` that are not zombies (a zombie runs nothing)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry))
    return members


async def wait_group_gone(pgid: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while live_group_members(pgid):
            await asyncio.sleep(0.02)  # polling /proc: there is no event for another process dying

"""The asyncio client (grpc.aio) for the chaos harness and benchmarks: the same calls and the
same leader following as the sync Client, without blocking the event loop."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import grpc
import grpc.aio

from raftsched.client import calls
from raftsched.client.base import ClientBase
from raftsched.client.calls import TERMINAL_STATES, Call
from raftsched.client.channels import CHANNEL_OPTIONS, credentials
from raftsched.client.errors import ClientError
from raftsched.client.routing import leader_hint
from raftsched.client.stream import STREAM_CALL, SubmitStreams
from raftsched.client.sync import SNAPSHOT_CHUNK_LIMIT, STUBS, remove_quietly, rpc_error_parts, stream_error
from raftsched.config import TLSConfig
from raftsched.v1 import admin_pb2, jobs_pb2, scheduler_pb2

R = TypeVar("R")


class AsyncClient(ClientBase):
    """Like Client, awaitable. Create and use it inside one running event loop."""

    def __init__(self, addresses: Sequence[str], *, timeout: float = 10.0, tls: TLSConfig | None = None,
                 attempt_timeout: float | None = None, token: str = "") -> None:
        super().__init__(addresses, timeout=timeout, tls=tls, attempt_timeout=attempt_timeout, token=token)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._submit_streams: SubmitStreams | None = None

    async def close(self) -> None:
        if self._submit_streams is not None:
            await self._submit_streams.close()
            self._submit_streams = None
        channels, self._channels = list(self._channels.values()), {}
        self._stubs.clear()
        for channel in channels:
            await channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = (grpc.aio.secure_channel(address, credentials(self._tls, self._token), options=CHANNEL_OPTIONS)
                       if self._tls else grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS))
            self._channels[address] = channel
        return channel

    def _method(self, call: Call[Any], address: str) -> Any:
        stub = self._stubs.get((call.service, address))
        if stub is None:  # a stub makes a callable for each method of its service: make it once
            stub = self._stubs[(call.service, address)] = STUBS[call.service](self._channel(address))
        return getattr(stub, call.method)

    async def _unary(self, call: Call[R], timeout: float | None = None) -> R:
        state = self._plan(call, timeout)
        while True:
            method = self._method(call, state.target())
            try:
                attempt = method(call.request, timeout=state.timeout())
                response = await attempt
            except grpc.aio.AioRpcError as e:
                await asyncio.sleep(state.failed(*rpc_error_parts(e)))
                continue
            state.succeeded(leader_hint(await attempt.trailing_metadata()))
            return cast(R, response)

    async def _stream(self, call: Call[R], timeout: float | None) -> AsyncIterator[R]:
        state = self._plan(call, math.inf if timeout is None else timeout, capped=False)
        while True:
            remaining = state.timeout()
            stream = self._method(call, state.target())(
                call.request, timeout=None if math.isinf(remaining) else remaining)
            try:
                first = await stream.read()
            except grpc.aio.AioRpcError as e:
                await asyncio.sleep(state.failed(*rpc_error_parts(e)))
                continue
            state.succeeded()
            break
        if first is grpc.aio.EOF:
            return
        try:
            yield cast(R, first)
            # read() only: grpc.aio forbids mixing read() with `async for` on one call.
            while (message := await stream.read()) is not grpc.aio.EOF:
                yield cast(R, message)
        except grpc.aio.AioRpcError as e:
            raise stream_error(e) from None
        finally:
            stream.cancel()  # a consumer that stops early must not leave the call open

    # --- Scheduler ----------------------------------------------------------------------------

    async def submit_job(self, spec: jobs_pb2.JobSpec, *, timeout: float | None = None,
                         ) -> scheduler_pb2.SubmitJobResponse:
        return await self._unary(calls.submit_job(spec), timeout)

    async def submit_job_streamed(self, spec: jobs_pb2.JobSpec, *, timeout: float | None = None,
                                  ) -> scheduler_pb2.SubmitJobResponse:
        """As submit_job, over this client's SubmitJobStream to the node: for many concurrent
        submits, which the node then writes many to an entry (raftsched.client.stream)."""
        if self._submit_streams is None:
            self._submit_streams = SubmitStreams(lambda address: self._method(STREAM_CALL, address)(), self._plan)
        return await self._submit_streams.submit(spec, timeout)

    async def submit_jobs(self, specs: Iterable[jobs_pb2.JobSpec], *, timeout: float | None = None,
                          ) -> scheduler_pb2.SubmitJobsResponse:
        return await self._unary(calls.submit_jobs(specs), timeout)

    async def get_job(self, job_id: str, stale: bool = False, *, timeout: float | None = None,
                      ) -> jobs_pb2.Job:
        return await self._unary(calls.get_job(job_id, stale), timeout)

    async def list_jobs(self, state: int = jobs_pb2.JOB_STATE_UNSPECIFIED, schedule: str = "",
                        page_size: int = 0, page_token: str = "", stale: bool = False, *,
                        where: calls.JobFilter | None = None,
                        timeout: float | None = None) -> scheduler_pb2.ListJobsResponse:
        return await self._unary(calls.list_jobs(state, schedule, page_size, page_token, stale, where), timeout)

    async def iter_jobs(self, state: int = jobs_pb2.JOB_STATE_UNSPECIFIED, schedule: str = "", page_size: int = 0,
                        stale: bool = False, *, where: calls.JobFilter | None = None,
                        limit: int | None = None) -> AsyncIterator[jobs_pb2.Job]:
        """Every matching job (at most `limit`), fetching page after page (short pages included)."""
        token, left = "", math.inf if limit is None else limit
        while left > 0:
            page = await self.list_jobs(state, schedule, page_size, token, stale, where=where)
            for job in page.jobs[: int(min(left, len(page.jobs)))]:
                yield job
                left -= 1
            token = page.next_page_token
            if not token:
                return

    async def cancel_job(self, job_id: str, reason: str = "", *, timeout: float | None = None,
                         ) -> jobs_pb2.Job:
        return await self._unary(calls.cancel_job(job_id, reason), timeout)

    async def check_fence(self, job_id: str, attempt: int, *, timeout: float | None = None,
                          ) -> scheduler_pb2.CheckFenceResponse:
        return await self._unary(calls.check_fence(job_id, attempt), timeout)

    async def list_executors(self, stale: bool = False, *, timeout: float | None = None,
                             ) -> scheduler_pb2.ListExecutorsResponse:
        return await self._unary(calls.list_executors(stale), timeout)

    async def drain_executor(self, executor_id: str, *, timeout: float | None = None) -> jobs_pb2.ExecutorInfo:
        return await self._unary(calls.drain_executor(executor_id), timeout)

    async def release_executor(self, executor_id: str, *, timeout: float | None = None) -> jobs_pb2.ExecutorInfo:
        """End an executor's quarantine before its cool-off is over."""
        return await self._unary(calls.release_executor(executor_id), timeout)

    async def create_schedule(self, spec: scheduler_pb2.ScheduleSpec, *, timeout: float | None = None,
                              ) -> scheduler_pb2.Schedule:
        return await self._unary(calls.create_schedule(spec), timeout)

    async def list_schedules(self, stale: bool = False, *, timeout: float | None = None,
                             ) -> scheduler_pb2.ListSchedulesResponse:
        return await self._unary(calls.list_schedules(stale), timeout)

    async def get_schedule(self, name: str, stale: bool = False, *, timeout: float | None = None,
                           ) -> scheduler_pb2.Schedule:
        return await self._unary(calls.get_schedule(name, stale), timeout)

    async def pause_schedule(self, name: str, note: str = "", *, timeout: float | None = None,
                             ) -> scheduler_pb2.Schedule:
        return await self._unary(calls.pause_schedule(name, note), timeout)

    async def resume_schedule(self, name: str, *, timeout: float | None = None) -> scheduler_pb2.Schedule:
        return await self._unary(calls.resume_schedule(name), timeout)

    async def trigger_schedule(self, name: str, *, timeout: float | None = None) -> jobs_pb2.Job:
        return await self._unary(calls.trigger_schedule(name), timeout)

    async def delete_schedule(self, name: str, *, timeout: float | None = None,
                              ) -> scheduler_pb2.DeleteScheduleResponse:
        return await self._unary(calls.delete_schedule(name), timeout)

    async def watch_job(self, job_id: str, *, timeout: float | None = None) -> AsyncIterator[jobs_pb2.Job]:
        """The current state, then each change until terminal; reopened after a node failure."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            try:
                async for job in self._stream(calls.watch_job(job_id), deadline - time.monotonic()):
                    yield job
                    if job.state in TERMINAL_STATES:
                        return
                return
            except ClientError as e:
                if not e.retryable or time.monotonic() >= deadline:
                    raise

    # --- Admin -------------------------------------------------------------------------------

    async def status(self, local_only: bool = False, *, timeout: float | None = None,
                     ) -> admin_pb2.StatusResponse:
        return await self._unary(calls.status(local_only), timeout)

    async def list_alarms(self, stale: bool = False, *, timeout: float | None = None,
                          ) -> admin_pb2.ListAlarmsResponse:
        return await self._unary(calls.list_alarms(stale), timeout)

    async def list_members(self, *, timeout: float | None = None) -> admin_pb2.ListMembersResponse:
        return await self._unary(calls.list_members(), timeout)

    async def add_member(self, member_id: str, address: str, learner: bool = False, *,
                         timeout: float | None = None) -> admin_pb2.ListMembersResponse:
        return await self._unary(calls.add_member(member_id, address, learner), timeout)

    async def promote_member(self, member_id: str, *, timeout: float | None = None,
                             ) -> admin_pb2.ListMembersResponse:
        return await self._unary(calls.promote_member(member_id), timeout)

    async def remove_member(self, member_id: str, *, timeout: float | None = None,
                            ) -> admin_pb2.ListMembersResponse:
        return await self._unary(calls.remove_member(member_id), timeout)

    async def transfer_leader(self, target: str = "", *, timeout: float | None = None,
                              ) -> admin_pb2.TransferLeaderResponse:
        return await self._unary(calls.transfer_leader(target), timeout)

    async def read_log(self, from_index: int = 0, limit: int = 0, *, timeout: float | None = None,
                       ) -> admin_pb2.ReadLogResponse:
        return await self._unary(calls.read_log(from_index, limit), timeout)

    async def save_snapshot(self, path: str, *, timeout: float | None = None,
                            progress: Callable[[int], None] | None = None) -> int:
        """As Client.save_snapshot: stream a backup of the leader's state into path (written to
        path + '.partial', renamed at the end); returns its size. `progress` gets the bytes so far."""
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        partial = path + ".partial"
        while True:
            try:
                size = await self._download(partial, deadline - time.monotonic(), progress)
            except ClientError as e:
                if not e.retryable or time.monotonic() >= deadline:
                    remove_quietly(partial)
                    raise
                continue
            os.replace(partial, path)
            return size

    async def _download(self, partial: str, timeout: float, progress: Callable[[int], None] | None) -> int:
        size = 0
        with open(partial, "wb", buffering=SNAPSHOT_CHUNK_LIMIT) as f:
            async for chunk in self._stream(calls.save_snapshot(), timeout):
                await asyncio.to_thread(f.write, chunk.data)
                size += len(chunk.data)
                if progress is not None:
                    progress(size)
            f.flush()
            await asyncio.to_thread(os.fsync, f.fileno())
        return size

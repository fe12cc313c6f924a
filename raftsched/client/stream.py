"""Concurrent submits over SubmitJobStream (SPEC §4): a few long-lived calls per node carry every
submit of this client; each answer finds its caller by request_id.

Each submit keeps the unary call's guarantees: an idempotency key (so a retry never makes a
second job), leader following on the answer's hint, backoff on RESOURCE_EXHAUSTED, and one
deadline over all its attempts. A broken stream fails the submits it carried; they retry on a
new one.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from raftsched.client import calls
from raftsched.client.calls import Call, with_idempotency_key
from raftsched.client.routing import CallState
from raftsched.client.sync import rpc_error_parts
from raftsched.v1 import jobs_pb2, scheduler_pb2

STREAM_CALL: Call[Any] = Call("scheduler", "SubmitJobStream", None, idempotent=True)
# grpc.aio takes one write at a time per call, and each write waits for the transport, so one
# call carried about 1,000 submits/s at 128 in flight where 16 calls carried 2,200/s (issue 19's
# profile: the client's writer was the limit, not the node). A node gets another call only while
# every open one has writes waiting, up to this many: one submit at a time uses one call.
MAX_CALLS_PER_NODE = 16
_CODE_NAMES = {status.value[0]: status.name for status in grpc.StatusCode}


class StreamBroken(Exception):
    """The stream a submit was sent on ended before its answer came."""

    def __init__(self, code: str, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


class _NodeStream:
    """One open SubmitJobStream call to one node, and the submits waiting for its answers. One
    writer task writes the requests in turn (grpc.aio allows one write at a time per call)."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.waiting: dict[str, asyncio.Future[scheduler_pb2.SubmitJobStreamResponse]] = {}
        self.outbox: asyncio.Queue[scheduler_pb2.SubmitJobRequest] = asyncio.Queue()
        self.broken: StreamBroken | None = None
        self.unsent = 0  # requests queued or being written
        self.tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._write())]

    async def _read(self) -> None:
        try:
            while (msg := await self.call.read()) is not grpc.aio.EOF:
                future = self.waiting.pop(msg.request_id, None)
                if future is not None and not future.done():
                    future.set_result(msg)
            self._break(StreamBroken("UNAVAILABLE", "the node ended the submit stream", None))
        except grpc.aio.AioRpcError as err:
            self._break(StreamBroken(*rpc_error_parts(err)[:3]))
        except asyncio.CancelledError:
            self._break(StreamBroken("CANCELLED", "the submit stream was closed", None))
            raise

    async def _write(self) -> None:
        try:
            while True:
                await self.call.write(await self.outbox.get())
                self.unsent -= 1
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError) as err:
            self._break(StreamBroken("UNAVAILABLE", f"could not write to the submit stream: {err}", None))

    def _break(self, err: StreamBroken) -> None:
        if self.broken is None:
            self.broken = err
            self.call.cancel()
            self.tasks[1].cancel()  # the writer would wait on the outbox forever
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(err)

    def send(self, request: scheduler_pb2.SubmitJobRequest) -> asyncio.Future[scheduler_pb2.SubmitJobStreamResponse]:
        if self.broken is not None:
            raise self.broken
        future: asyncio.Future[scheduler_pb2.SubmitJobStreamResponse] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a caller that gave up must not leave an unread error
        self.waiting[request.request_id] = future
        self.unsent += 1
        self.outbox.put_nowait(request)
        return future

    async def close(self) -> None:
        self.call.cancel()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class SubmitStreams:
    """The submit streams of one AsyncClient, up to MAX_CALLS_PER_NODE per node address, opened
    on first use and as load needs them.
    `open_call(address)` opens a SubmitJobStream call there; `plan(call, timeout)` is the
    client's retry plan for one logical call."""

    def __init__(self, open_call: Callable[[str], Any],
                 plan: Callable[[Call[Any], float | None], CallState]) -> None:
        self._open_call = open_call
        self._plan = plan
        self._streams: dict[str, list[_NodeStream]] = {}
        self._ids = itertools.count(1)

    def _stream(self, address: str) -> _NodeStream:
        """The least busy open call to `address`, or a new one while all have writes waiting."""
        streams = self._streams[address] = [s for s in self._streams.get(address, []) if s.broken is None]
        idlest = min(streams, key=lambda s: s.unsent, default=None)
        if idlest is None or (idlest.unsent and len(streams) < MAX_CALLS_PER_NODE):
            idlest = _NodeStream(self._open_call(address))
            streams.append(idlest)
        return idlest

    async def submit(self, spec: jobs_pb2.JobSpec, timeout: float | None = None,
                     ) -> scheduler_pb2.SubmitJobResponse:
        """Submit one job; answers like AsyncClient.submit_job, raises the same typed errors."""
        keyed = with_idempotency_key(spec)
        state = self._plan(calls.submit_job(keyed), timeout)
        request = scheduler_pb2.SubmitJobRequest(spec=keyed, request_id=str(next(self._ids)))
        while True:
            target = state.target()
            limit = state.timeout()  # raises the last error once the deadline has passed
            stream = self._stream(target)
            try:
                answer = await asyncio.wait_for(stream.send(request), limit)
            except StreamBroken as err:
                await asyncio.sleep(state.failed(err.code, err.message, err.hint))
                continue
            except TimeoutError:
                stream.waiting.pop(request.request_id, None)
                await asyncio.sleep(state.failed("DEADLINE_EXCEEDED", f"no answer from {target} in time", None))
                continue
            if answer.code == 0:
                state.succeeded(answer.leader or target)
                return scheduler_pb2.SubmitJobResponse(job=answer.job, existed=answer.existed)
            code = _CODE_NAMES.get(answer.code, "UNKNOWN")
            await asyncio.sleep(state.failed(code, answer.error, answer.leader or None, answer.outcome_unknown))

    async def close(self) -> None:
        streams, self._streams = [s for per_node in self._streams.values() for s in per_node], {}
        for stream in streams:
            await stream.close()

"""`/jobs/{id}/events`: the job's WatchJob stream relayed as server-sent events.

Each event is the job page's live region rendered anew (escaped like the page), so the script
only swaps it in. An `end` event follows a terminal state, and the script closes the stream; a
cut stream is reopened by the browser (`retry: 1000`) and WatchJob sends the current state
first, so nothing is missed. A comment line every KEEPALIVE_S finds browsers that went away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeAlias

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from raftsched.client.aio import AsyncClient
from raftsched.client.errors import ClientError
from raftsched.clock import now_ms
from raftsched.jobstates import TERMINAL
from raftsched.v1 import jobs_pb2

from ..context import MAX_STREAMS, Console, console_of, visitor_of

KEEPALIVE_S = 15.0


class _Stop:
    """What `_next` answers once the console is stopping."""


_STOP = _Stop()
_Item: TypeAlias = jobs_pb2.Job | BaseException
QUEUE_LIMIT = 8  # job states waiting to be sent; a slow browser skips to the newest


async def job_events(request: Request) -> Response:
    console = console_of(request)
    visitor = visitor_of(request)
    if console.streams >= MAX_STREAMS:
        return PlainTextResponse(f"too many live pages open (at most {MAX_STREAMS})", status_code=503)
    stream = _events(console, console.client(visitor), request.path_params["job_id"])
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def event(data: str, name: str = "") -> str:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return (f"event: {name}\n" if name else "") + lines + "\n"


async def _events(console: Console, client: AsyncClient, job_id: str) -> AsyncIterator[str]:
    console.streams += 1
    queue: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_LIMIT)
    reader = asyncio.get_running_loop().create_task(_read(client, job_id, queue))
    try:
        yield "retry: 1000\n\n"
        while True:
            item = await _next(queue, console.stopping, KEEPALIVE_S)
            if isinstance(item, _Stop):
                return  # the console is stopping: the browser reconnects (to its successor)
            if item is None:
                yield ": keep-alive\n\n"
                continue
            if isinstance(item, BaseException):
                yield event(console.renderer.html("_live_error.html", {"error": _describe(item)}), "problem")
                return
            yield event(console.renderer.html("_job_live.html", {"job": item, "now": now_ms()}))
            if item.state in TERMINAL:
                yield event("", "end")
                return
    finally:
        console.streams -= 1
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _next(queue: asyncio.Queue[_Item], stopping: asyncio.Event | None, timeout: float,
                ) -> _Item | _Stop | None:
    """The next job state (or error) from the queue; _STOP once the console is stopping; None after
    `timeout` without either (time for a keep-alive)."""
    get = asyncio.ensure_future(queue.get())
    stop = asyncio.ensure_future(stopping.wait()) if stopping is not None else None
    done, _ = await asyncio.wait({get} if stop is None else {get, stop}, timeout=timeout,
                                 return_when=asyncio.FIRST_COMPLETED)
    if stop is not None:
        stop.cancel()
    if get in done:
        return get.result()
    get.cancel()  # not done, so it took nothing from the queue
    return _STOP if stop in done else None


async def _read(client: AsyncClient, job_id: str, queue: asyncio.Queue[_Item]) -> None:
    try:
        async for job in client.watch_job(job_id):
            if queue.full():
                queue.get_nowait()  # keep the newest state, never block the stream
            queue.put_nowait(job)
    except ClientError as e:
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(e)


def _describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return f"{error.code}: {error.message}"
    return type(error).__name__

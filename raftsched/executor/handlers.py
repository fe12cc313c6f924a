"""In-process task handlers: a registry, the `@handler` decorator and the built-ins.

A handler is an `async def fn(ctx: TaskContext) -> bytes | str | None`. What it writes to
`ctx.output` and what it returns (appended after) become the attempt's output tail; returning
normally means SUCCEEDED, raising means FAILED with the exception as the error. Cancellation (a
`cancel` from the leader, the per-attempt timeout, a lapsed lease) arrives as `CancelledError` at the
handler's next `await`; a handler that never awaits cannot be stopped, so long work should await.

    from raftsched.executor import TaskContext, handler

    @handler("greet")
    async def greet(ctx: TaskContext) -> bytes:
        ctx.output.write(f"attempt {ctx.fencing_token}\\n")
        return b"hello " + ctx.payload

`handler` registers into `default_registry`; build a `HandlerRegistry()` of your own to keep
registrations apart (tests do).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from raftsched.quoting import quote
from raftsched.state.validate import LABEL_RE, MAX_HANDLER_CHARS

HandlerResult = bytes | str | None
HandlerFn = Callable[["TaskContext"], Awaitable[HandlerResult]]

MAX_HANDLER_NAME = MAX_HANDLER_CHARS  # the leader refuses a registration with longer names


class OutputTail:
    """Keeps only the last `limit` bytes written: a task's output is bounded whatever it prints."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"output tail limit must be >= 0, got {limit}")
        self._limit = limit
        self._buf = bytearray()
        self.total = 0  # bytes written in all, kept so a report can say how much was cut

    def write(self, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else bytes(data)
        self.total += len(chunk)
        self._buf += chunk[-self._limit :] if self._limit else b""
        if len(self._buf) > self._limit:
            del self._buf[: len(self._buf) - self._limit]

    def getvalue(self) -> bytes:
        return bytes(self._buf)


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a handler knows about the attempt it runs."""

    job_id: str
    attempt: int
    payload: bytes
    output: OutputTail
    executor_id: str = ""  # the executor running the attempt (RAFTSCHED_EXECUTOR_ID for commands)

    @property
    def fencing_token(self) -> str:
        """`job_id:attempt`; downstream systems can refuse writes carrying a stale one."""
        return f"{self.job_id}:{self.attempt}"


class HandlerRegistry:
    """Handler name -> coroutine function; `builtins=True` starts with noop, sleep, echo and fail."""

    def __init__(self, *, builtins: bool = True) -> None:
        self._fns: dict[str, HandlerFn] = {}
        if builtins:
            for name, fn in BUILTINS.items():
                self.register(name, fn)

    def register(self, name: str, fn: HandlerFn, *, replace: bool = False) -> None:
        if not name or len(name) > MAX_HANDLER_NAME or not LABEL_RE.fullmatch(name):
            raise ValueError(f"handler name must be 1..{MAX_HANDLER_NAME} characters of [A-Za-z0-9._/-] "
                             f"(the leader refuses others), got {quote(name)}")
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"handler {quote(name)} must be an async def function")
        if name in self._fns and not replace:
            raise ValueError(f"handler {quote(name)} is already registered")
        self._fns[name] = fn

    def handler(self, name: str) -> Callable[[HandlerFn], HandlerFn]:
        """Decorator form of `register`."""

        def decorate(fn: HandlerFn) -> HandlerFn:
            self.register(name, fn)
            return fn

        return decorate

    def get(self, name: str) -> HandlerFn | None:
        return self._fns.get(name)

    def names(self) -> list[str]:
        return sorted(self._fns)

    def __contains__(self, name: object) -> bool:
        return name in self._fns

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


async def _noop(ctx: TaskContext) -> None:
    return None


async def _sleep(ctx: TaskContext) -> None:
    text = ctx.payload.decode("ascii", errors="replace").strip() or "0"
    if not text.isdigit():
        raise ValueError(f"sleep: payload must be milliseconds as ASCII digits, got {quote(text)}")
    await asyncio.sleep(int(text) / 1000.0)


async def _echo(ctx: TaskContext) -> bytes:
    return ctx.payload


async def _fail(ctx: TaskContext) -> None:
    message = ctx.payload.decode(errors="replace") or "fail handler called"
    raise RuntimeError(message)


BUILTINS: dict[str, HandlerFn] = {"noop": _noop, "sleep": _sleep, "echo": _echo, "fail": _fail}

# The registry `@handler` fills; an Executor built without `handlers=` uses it.
default_registry = HandlerRegistry()


def handler(name: str) -> Callable[[HandlerFn], HandlerFn]:
    """Register an async handler under `name` in `default_registry`."""
    return default_registry.handler(name)

"""The handler registry, the decorator and the bounded output tail."""

from __future__ import annotations

import pytest

from raftsched.executor import HandlerRegistry, OutputTail, TaskContext


def test_builtins_and_decorator() -> None:
    registry = HandlerRegistry()

    @registry.handler("mine")
    async def mine(ctx: TaskContext) -> bytes:
        return ctx.payload

    assert registry.names() == ["echo", "fail", "mine", "noop", "sleep"]
    assert registry.get("mine") is mine and "mine" in registry
    assert HandlerRegistry(builtins=False).names() == []


def test_registration_errors_are_clear() -> None:
    registry = HandlerRegistry()
    with pytest.raises(ValueError, match="already registered"):
        registry.handler("noop")(_async_noop)
    with pytest.raises(TypeError, match="async def"):
        registry.register("sync", lambda ctx: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match=r"1\.\.128"):
        registry.register("", _async_noop)
    registry.register("noop", _async_noop, replace=True)
    assert registry.get("noop") is _async_noop


async def _async_noop(ctx: TaskContext) -> None:
    return None


def test_context_fencing_token() -> None:
    ctx = TaskContext(job_id="j1", attempt=3, payload=b"", output=OutputTail(10))
    assert ctx.fencing_token == "j1:3"


@pytest.mark.parametrize("limit", [0, 1, 5, 64])
def test_output_tail_keeps_the_last_bytes(limit: int) -> None:
    tail, everything = OutputTail(limit), b""
    for i in range(50):
        chunk = f"chunk{i};".encode() * (i % 4)
        tail.write(chunk)
        everything += chunk
    tail.write("text")
    everything += b"text"
    assert tail.getvalue() == (everything[-limit:] if limit else b"")
    assert tail.total == len(everything)

"""AttemptRunner on its own: no gRPC."""

from __future__ import annotations

import asyncio

from raftsched.executor import AttemptKey, HandlerRegistry, TaskContext
from raftsched.executor.runner import AttemptRunner
from raftsched.v1 import jobs_pb2 as jpb

END = jpb.AttemptEnd.Name


def runner(spec: jpb.JobSpec, registry: HandlerRegistry | None = None) -> AttemptRunner:
    return AttemptRunner(AttemptKey("j", 1), spec, handlers=registry or HandlerRegistry(), tail_bytes=1024,
                         kill_grace_s=0.2)


async def test_handler_output_and_return_value_form_the_tail() -> None:
    registry = HandlerRegistry()

    @registry.handler("talk")
    async def talk(ctx: TaskContext) -> str:
        ctx.output.write(f"{ctx.fencing_token} ")
        return "done"

    result = await runner(jpb.JobSpec(handler="talk"), registry).run()
    assert (END(result.end), result.output_tail) == ("ATTEMPT_END_SUCCEEDED", b"j:1 done")


async def test_handler_and_command_know_their_executor() -> None:
    registry = HandlerRegistry()

    @registry.handler("who")
    async def who(ctx: TaskContext) -> str:
        return ctx.executor_id

    def on(spec: jpb.JobSpec) -> AttemptRunner:
        return AttemptRunner(AttemptKey("j", 1), spec, handlers=registry, tail_bytes=1024, kill_grace_s=0.2,
                             executor_id="e9")

    handler = await on(jpb.JobSpec(handler="who")).run()
    command = await on(jpb.JobSpec(command=["sh", "-c", 'printf "%s" "$RAFTSCHED_EXECUTOR_ID"'])).run()
    assert (handler.output_tail, command.output_tail) == (b"e9", b"e9")


async def test_handler_with_a_wrong_return_type_fails() -> None:
    registry = HandlerRegistry()

    async def odd(ctx: TaskContext) -> int:
        return 5

    registry.register("odd", odd)  # type: ignore[arg-type]
    result = await runner(jpb.JobSpec(handler="odd"), registry).run()
    assert END(result.end) == "ATTEMPT_END_FAILED" and "returned int" in result.error


async def test_first_kill_reason_wins() -> None:
    r = runner(jpb.JobSpec(handler="sleep", payload=b"10000"))
    task = asyncio.create_task(r.run())
    await asyncio.sleep(0)  # let it start its handler
    r.kill(jpb.ATTEMPT_END_CANCELLED, "cancelled")
    r.kill(jpb.ATTEMPT_END_FENCED, "lease expired")
    async with asyncio.timeout(2):
        result = await task
    assert (END(result.end), result.error) == ("ATTEMPT_END_CANCELLED", "cancelled")


async def test_handler_ignoring_cancellation_is_abandoned_after_grace() -> None:
    registry = HandlerRegistry()
    release = asyncio.Event()

    @registry.handler("stubborn")
    async def stubborn(ctx: TaskContext) -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # deliberately ignores cancellation

    r = runner(jpb.JobSpec(handler="stubborn"), registry)
    task = asyncio.create_task(r.run())
    await asyncio.sleep(0)
    r.kill(jpb.ATTEMPT_END_FENCED, "lease expired")
    async with asyncio.timeout(2):
        result = await task
    release.set()
    assert END(result.end) == "ATTEMPT_END_FENCED"


async def test_spec_without_command_or_handler_fails() -> None:
    result = await runner(jpb.JobSpec()).run()
    assert END(result.end) == "ATTEMPT_END_FAILED" and "neither" in result.error


async def test_large_payload_reaches_stdin() -> None:
    payload = b"x" * 300_000  # bigger than a pipe buffer: feeding must not deadlock with reading
    result = await runner(jpb.JobSpec(command=["wc", "-c"], payload=payload)).run()
    assert result.output_tail.strip() == b"300000"

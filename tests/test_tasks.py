"""raftsched.tasks.TaskOwner: every background task has an owner that cancels and awaits it, and
no failure is swallowed: it is logged with its traceback and counted; a loop restarts with backoff."""

from __future__ import annotations

import asyncio
import logging

import pytest

from raftsched.tasks import TaskOwner


async def test_a_failing_loop_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("node n1")
    runs = 0
    done = asyncio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise TypeError(f"bug number {runs}")
        done.set()
        await asyncio.Event().wait()  # runs until cancelled

    with caplog.at_level(logging.ERROR, logger="raftsched.tasks"):
        owner.supervise("watchdog", loop)
        await asyncio.wait_for(done.wait(), 5)
    assert runs == 3 and owner.failures["watchdog"] == 2
    failures = [r for r in caplog.records if "watchdog loop failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info is not None for r in failures)  # with the traceback
    await owner.close()
    assert len(owner) == 0


async def test_a_failed_task_is_counted_and_an_expected_error_only_reaches_its_awaiter(
        caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("node n1")

    async def fail(err: Exception) -> None:
        raise err

    with caplog.at_level(logging.DEBUG, logger="raftsched.tasks"):
        unexpected = owner.spawn(fail(KeyError("x")), "health")
        expected = owner.spawn(fail(TimeoutError("lost")), "internal-proposal", expected=(TimeoutError,))
        with pytest.raises(TimeoutError):
            await expected  # the awaiting caller still gets it
        await asyncio.wait([unexpected])
    assert owner.failures == {"health": 1}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None and "health" in errors[0].getMessage()
    await owner.close()


async def test_close_cancels_and_awaits_every_task_and_refuses_new_ones() -> None:
    owner = TaskOwner("node n1")
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = owner.spawn(forever(), "forever")
    await asyncio.sleep(0)
    await owner.close()
    assert task.cancelled() and cancelled.is_set() and len(owner) == 0
    with pytest.raises(RuntimeError, match="after its owner closed"):
        owner.spawn(forever(), "late")

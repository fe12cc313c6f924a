"""The leader's task owner (raftsched.tasks, reused across terms): a loop that raises is logged with
its traceback, counted and run again after a backoff; stop() cancels and awaits every task it
started, and the owner takes tasks again afterwards."""

from __future__ import annotations

import asyncio
import logging

import pytest

from raftsched.tasks import TaskOwner


async def test_a_failing_loop_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("leader")
    runs: list[int] = []
    second = asyncio.Event()

    async def loop() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise TypeError("a bug in the watchdog")
        second.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="raftsched.tasks"):
        owner.supervise("watchdog", loop)
        async with asyncio.timeout(5):
            await second.wait()
    assert owner.failures == {"watchdog": 1}
    failed = [r for r in caplog.records if "the watchdog loop failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None and failed[0].exc_info[0] is TypeError
    assert len(owner) == 1
    await owner.stop()
    assert len(owner) == 0


async def test_stop_cancels_and_awaits_every_task() -> None:
    owner = TaskOwner("leader")
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    owner.spawn(forever(), "a")
    owner.supervise("b", forever)
    await asyncio.sleep(0)
    await owner.stop()
    assert cancelled.is_set() and len(owner) == 0
    owner.spawn(asyncio.sleep(0), "after-stop")  # a new term: the same owner takes tasks again
    await owner.stop()

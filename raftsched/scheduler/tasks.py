"""Owners for the leader's tasks: every task started is cancelled and awaited by `stop()`, and a
loop that raises is logged with its traceback, counted by name, and restarted with backoff (STYLE
"Do" 13: never swallowed to stay alive)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("raftsched.scheduler")
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0


class TaskOwner:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loop_errors: dict[str, int] = {}  # loop name -> failures, for the node's life

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task[Any]:
        """Run `loop` until stopped; when it raises, log and count it, back off, run it again."""
        return self.spawn(self._supervised(name, loop), name)

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            try:
                await loop()
                return
            except Exception:
                failures += 1
                self.loop_errors[name] = self.loop_errors.get(name, 0) + 1
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(failures - 1, 8))
                log.exception("leader loop %s failed (%d time(s) in a row); restarting in %.1f s",
                              name, failures, delay)
                await asyncio.sleep(delay)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

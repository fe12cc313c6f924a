"""Owners for background tasks: every task a node starts belongs to one, which cancels and awaits
it on close, and no task's failure goes unseen.

    TaskOwner.spawn(coro, name)        a one-shot task; a failure is logged with its traceback and
                                       counted under `name`, except the `expected` error types
                                       that belong to whoever awaits the task (logged at DEBUG)
    TaskOwner.supervise(name, loop)    a loop that must keep running: when it raises, the failure
                                       is logged with its traceback and counted, and the loop is
                                       started again after a backoff (doubling, capped)
    TaskOwner.stop()                   cancel every task and wait for them all; the owner can be
                                       used again (the leader's scheduler, across terms)
    TaskOwner.close()                  stop(), and refuse new tasks from then on

The counts (`failures`, by task name) are exported as `raftsched_loop_failures` (raftsched.metrics).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("raftsched.tasks")

BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 10.0
MAX_TASKS = 100_000  # a bound on live tasks of one owner; beyond it spawn refuses (a leak, not load)


class TaskOwner:
    def __init__(self, owner: str) -> None:
        self.owner = owner  # for the logs: "node n1"
        self.failures: collections.Counter[str] = collections.Counter()
        self._tasks: dict[asyncio.Task[Any], tuple[type[BaseException], ...]] = {}  # task -> expected errors
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *,
              expected: tuple[type[BaseException], ...] = ()) -> asyncio.Task[Any]:
        """Run `coro` as a task owned here. A failure is logged and counted (an `expected` one only
        logged at DEBUG); awaiting the task still raises it to whoever awaits."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.owner}: task {name!r} started after its owner closed")
        if len(self._tasks) >= MAX_TASKS:
            coro.close()
            raise RuntimeError(f"{self.owner}: {len(self._tasks)} tasks alive; refusing {name!r} (a task leak?)")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[task] = expected
        task.add_done_callback(self._done)
        return task

    def supervise(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[Any]:
        """Keep `loop()` running until close(); restart it with backoff whenever it raises."""
        return self.spawn(self._restarting(name, loop), name)

    async def _restarting(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        delay = BACKOFF_INITIAL_S
        while True:
            try:
                await loop()
                return
            except Exception:
                self.failures[name] += 1
                log.exception("%s: the %s loop failed (%d times so far); restarting it in %.1f s",
                              self.owner, name, self.failures[name], delay)
            await asyncio.sleep(delay)
            delay = min(BACKOFF_MAX_S, delay * 2)

    def _done(self, task: asyncio.Task[Any]) -> None:
        expected = self._tasks.pop(task, ())
        if task.cancelled():
            return
        err = task.exception()  # retrieved here, so asyncio does not report it again at GC
        if err is not None and isinstance(err, expected):
            log.debug("%s: task %s ended with %r (its awaiting caller handles it)", self.owner, task.get_name(), err)
        elif err is not None:
            self.failures[task.get_name()] += 1
            log.error("%s: task %s failed", self.owner, task.get_name(), exc_info=err)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        await self.stop()

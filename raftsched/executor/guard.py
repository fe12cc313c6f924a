"""The agent's side of a task guard (see guard_process.py for why and for the line protocol)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from raftsched.executor import guard_process

log = logging.getLogger("raftsched.executor")

GUARD_SCRIPT = str(Path(guard_process.__file__).resolve())
RELEASE_WAIT_S = 1.0


class TaskGuard:
    """One guard process watching one task's process group."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def start(cls, pgid: int, *, remaining_s: float, grace_s: float) -> TaskGuard | None:
        """Spawn a guard for `pgid`; None (logged) when it cannot be started: the agent's own
        watchdog still enforces the lease, only a frozen agent is then unguarded."""
        argv = [sys.executable, "-I", GUARD_SCRIPT, str(pgid), str(_ms(grace_s)), str(_deadline_ns(remaining_s))]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # signals aimed at the agent's group must not reach it
            )
        except OSError as exc:
            log.warning("cannot start task guard pgid=%d: %s", pgid, exc)
            return None
        return cls(proc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def renew(self, remaining_s: float) -> None:
        self._send(f"renew {_deadline_ns(remaining_s)}\n")

    async def release(self) -> bool:
        """Stop guarding; says whether the guard had already killed the group (lease lapsed)."""
        self._send("release\n")
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        waiter = asyncio.ensure_future(self._proc.wait())
        done, _ = await asyncio.wait({waiter}, timeout=RELEASE_WAIT_S)
        if not done:
            log.warning("task guard pid=%d ignored release; killing it", self._proc.pid)
            self._proc.kill()
        await waiter
        return self._proc.returncode == guard_process.EXIT_KILLED

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        if self._proc.returncode is None and stdin is not None and not stdin.is_closing():
            stdin.write(line.encode())


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))


def _deadline_ns(remaining_s: float) -> int:
    """The absolute CLOCK_MONOTONIC time the lease ends, as the guard expects it."""
    return time.monotonic_ns() + max(0, int(remaining_s * 1e9))

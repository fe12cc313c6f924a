"""What the generic phases need of a system under test: a write, its leader, kill and restart."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from benchlib.loadgen import Op
from benchlib.procs import Proc


class System(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Close clients; the processes belong to the run's ProcessSet."""

    async def write_op(self) -> Op:
        """A fresh client's write: one acknowledged (committed) write per call."""

    async def leader(self) -> str:
        """The member that leads now."""

    def kill(self, member: str) -> None:
        """SIGKILL the member."""

    def restart(self, member: str) -> None: ...

    async def wait_caught_up(self, member: str, timeout: float) -> None:
        """Return once the restarted member follows a leader and has applied what it committed."""

    def server_pids(self) -> dict[str, int]:
        """Member name -> pid of each live server process."""


class ManagedMembers:
    """What every system's process handling shares: kill, restart, pids, and waiting until a
    restarted member has caught up. Subclasses say how to tell (`_caught_up`)."""

    proc: dict[str, Proc]
    member_kind = "member"

    def kill(self, member: str) -> None:
        self.proc[member].kill9()

    def restart(self, member: str) -> None:
        self.proc[member].start()

    def server_pids(self) -> dict[str, int]:
        return {m: p.pid for m, p in self.proc.items() if p.alive()}

    async def wait_caught_up(self, member: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self._caught_up(member):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.member_kind} {member} did not catch up in {timeout:.0f} s")

    async def _caught_up(self, member: str) -> bool:
        raise NotImplementedError

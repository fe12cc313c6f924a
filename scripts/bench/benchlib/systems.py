"""What the generic phases need of a system under test: a write, its leader, kill and restart."""

from __future__ import annotations

from typing import Protocol

from benchlib.loadgen import Op


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

"""The narrow seams of the scheduler shell: what it reads and calls, as protocols.

`raftsched.scheduler.view.StateView` is what the pure core reads of the state machine; `LeaderNode`
is what the asyncio shell needs of the node that runs it
(`raftsched.node.Node` satisfies it). Nothing in `raftsched.scheduler` imports the node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from raftsched.scheduler.view import StateView
from raftsched.v1 import commands_pb2, jobs_pb2


class ObservableState(StateView, Protocol):
    """The state view plus the apply-time hooks the shell uses."""

    def add_listener(self, callback: Callable[[jobs_pb2.Job], None]) -> None: ...
    def remove_listener(self, callback: Callable[[jobs_pb2.Job], None]) -> None: ...


class Proposer(Protocol):
    """Proposes the leader's own commands (stamped with its clock) and waits for a read barrier."""

    async def propose_internal(self, cmd: commands_pb2.Command,
                               timeout: float = 10.0) -> commands_pb2.ApplyResult: ...
    def propose_internal_nowait(self, cmd: commands_pb2.Command,
                                timeout: float = 10.0) -> asyncio.Task[commands_pb2.ApplyResult]: ...


class LeaderNode(Proposer, Protocol):
    """What the leader scheduler shell needs of the node that runs it."""

    id: str
    config: Any  # raftsched.config.NodeConfig: lease_ms, kill_grace_ms, executor_timeout_ms, ...
    sm: Any  # ObservableState, plus the history queries of the retention loop

    async def read_barrier(self) -> None: ...
    def local_hash(self, check_id: int) -> tuple[int, bytes] | None: ...
    async def peer_hash(self, peer: str, check_id: int) -> Any: ...
    def members(self) -> frozenset[str]: ...
    def members_support(self, feature: int) -> bool: ...

"""Executor streams (SPEC §4 Executor): only the leader serves them; others redirect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from raftsched.api.forward import LEADER_KEY
from raftsched.v1 import executor_pb2_grpc

if TYPE_CHECKING:
    from raftsched.node import Node


class ExecutorService(executor_pb2_grpc.ExecutorServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if not self.node.is_leader or not self.node.scheduler.running:
            leader = self.node.leader_address()
            context.set_trailing_metadata(((LEADER_KEY, leader),))
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"not the leader; the leader is {leader or 'not known yet'}"
            )
        await self.node.scheduler.serve(context)

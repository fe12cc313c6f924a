"""Executor streams (SPEC §4 Executor): only the leader serves them; others redirect.

The first message must register. Before anything else happens (no session, no proposal), the
registration is checked against the protocol's limits (INVALID_ARGUMENT naming the field) and,
when the caller's certificate or token names an executor id, against that id
(PERMISSION_DENIED). Refusals are counted in `LeaderScheduler.refusals` and logged once per 10 s.
"""

from __future__ import annotations

from typing import Any

import grpc

from raftsched.api.errors import LEADER_KEY
from raftsched.quoting import quote
from raftsched.scheduler.screening import Kind, Reason, Refusal, check_register
from raftsched.seams import LeaderScheduling, LocalNode
from raftsched.security.auth import caller_executor
from raftsched.state.validate import ValidationError
from raftsched.v1 import executor_pb2_grpc


class ExecutorService(executor_pb2_grpc.ExecutorServicer):
    def __init__(self, *, node: LocalNode, scheduler: LeaderScheduling) -> None:
        self.node = node
        self.scheduler = scheduler

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if not self.node.is_leader or not self.scheduler.running:
            leader = self.node.leader_address()
            context.set_trailing_metadata(((LEADER_KEY, leader),))
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"not the leader; the leader is {leader or 'not known yet'}"
            )
        first = await context.read()
        if first is grpc.aio.EOF or not first.HasField("register"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "register: the first message must register")
        await self._admit(first.register, context)
        await self.scheduler.serve(context, first)

    async def _admit(self, reg: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Abort unless `reg` is within the protocol's limits and the caller may register its id."""
        refusals = self.scheduler.refusals
        try:
            check_register(reg)
        except ValidationError as err:
            refusals.add(Refusal(Kind.REGISTER, Reason.INVALID, reg.executor_id, str(err)))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"register.{err}")
        bound = caller_executor()
        if bound is not None and bound != reg.executor_id:
            why = (f"register.executor_id: {quote(reg.executor_id)} is not {quote(bound)}, "
                   "the executor your credentials name")
            refusals.add(Refusal(Kind.REGISTER, Reason.IDENTITY, reg.executor_id, why))
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)

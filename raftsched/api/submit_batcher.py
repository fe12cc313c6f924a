"""Single submits that arrive together (SubmitJobStream, from every stream at once) proposed as
one SubmitJobs entry: one Raft entry, one fsync share and one apply for many jobs.

What arrives within one turn of the event loop is flushed at the end of that turn, split only by
the entry size limit. Each caller gets its own result (a refused spec does not fail the others);
a proposal that fails (overload, lost leadership, outcome unknown) fails every submit it held.
"""

from __future__ import annotations

import asyncio

from raftsched.seams import Proposer
from raftsched.state import commands as cmds
from raftsched.v1 import jobs_pb2, scheduler_pb2

Pending = tuple[jobs_pb2.JobSpec, "asyncio.Future[scheduler_pb2.SubmitResult]"]


class SubmitBatcher:
    def __init__(self, proposer: Proposer) -> None:
        self._proposer = proposer
        self._pending: list[Pending] = []
        self._flush_scheduled = False
        self._proposals: set[asyncio.Task[None]] = set()  # held so that none is garbage-collected

    def submit(self, spec: jobs_pb2.JobSpec) -> asyncio.Future[scheduler_pb2.SubmitResult]:
        """Queue a validated spec for the next entry; the future ends with its SubmitResult."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[scheduler_pb2.SubmitResult] = loop.create_future()
        self._pending.append((spec, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        for group in cmds.split_by_size([spec.ByteSize() for spec, _ in batch]):
            task = asyncio.ensure_future(self._propose([batch[i] for i in group]))
            self._proposals.add(task)
            task.add_done_callback(self._proposals.discard)

    async def _propose(self, items: list[Pending]) -> None:
        try:
            applied = await self._proposer.propose(cmds.submit(*(spec for spec, _ in items)))
        except Exception as err:  # every submit of this entry shares its fate
            for _, future in items:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), result in zip(items, applied.submitted, strict=True):
            if not future.done():
                future.set_result(result)

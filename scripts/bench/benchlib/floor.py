"""The floor system (floor_server.py): one process, writes only (nothing to fail over)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import grpc

from benchlib.loadgen import Op
from benchlib.procs import HOST, Proc, ProcessSet, free_port, wait_port
from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

SERVER = Path(__file__).resolve().parent.parent / "floor_server.py"


class GrpcFloor:
    name = "grpc floor"

    def __init__(self, root: Path, procs: ProcessSet) -> None:
        self.port = free_port()
        self.proc = procs.add(Proc("floor", [sys.executable, str(SERVER), "--port", str(self.port)],
                                   root / "logs" / "floor.log"))
        self._channels: list[grpc.aio.Channel] = []
        self._run = uuid.uuid4().hex[:8]

    async def start(self) -> None:
        self.proc.start()
        if not wait_port(self.port, 30):
            raise RuntimeError("the floor server did not open its port:\n" + self.proc.log_tail())

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()

    async def write_op(self) -> Op:
        """The same request as raftsched's: a noop job with its own idempotency key."""
        channel = grpc.aio.insecure_channel(f"{HOST}:{self.port}")
        self._channels.append(channel)
        submit = scheduler_pb2_grpc.SchedulerStub(channel).SubmitJob  # type: ignore[no-untyped-call]
        keys = iter(range(1 << 62))

        async def op(worker: int) -> object:
            spec = jobs_pb2.JobSpec(handler="noop", idempotency_key=f"floor-{self._run}-{next(keys)}")
            return await submit(scheduler_pb2.SubmitJobRequest(spec=spec), timeout=30)

        return op

    def server_pids(self) -> dict[str, int]:
        return {"floor": self.proc.pid} if self.proc.alive() else {}

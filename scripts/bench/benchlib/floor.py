"""The floors: systems that do less than raftsched, measured with the same load generator (writes
only, nothing to fail over).
- `GrpcFloor` (floor_server.py): one process whose SubmitJob answers at once.
- `ReplicationFloor` (replication_floor.py): a leader and two replicas doing only what any
  replicated, durable write needs: rounds of requests to both replicas, fdatasync on each, the
  answer once the leader's and one replica's copies are durable."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import grpc

from benchlib.loadgen import Op
from benchlib.procs import HOST, Proc, ProcessSet, free_ports, wait_port
from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

SCRIPTS = Path(__file__).resolve().parent.parent
SERVER = SCRIPTS / "floor_server.py"
REPLICATION = SCRIPTS / "replication_floor.py"


class _SubmitTarget:
    """A system answering raftsched's SubmitJob at `self.port`."""

    name = ""
    port = 0

    def __init__(self) -> None:
        self._channels: list[grpc.aio.Channel] = []
        self._run = uuid.uuid4().hex[:8]

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


def _started(proc: Proc, port: int) -> None:
    proc.start()
    if not wait_port(port, 30):
        raise RuntimeError(f"{proc.name} did not open its port:\n" + proc.log_tail())


class GrpcFloor(_SubmitTarget):
    name = "grpc floor"

    def __init__(self, root: Path, procs: ProcessSet) -> None:
        super().__init__()
        (self.port,) = free_ports(1)
        self.proc = procs.add(Proc("floor", [sys.executable, str(SERVER), "--port", str(self.port)],
                                   root / "logs" / "floor.log"))
        self.procs = [self.proc]

    async def start(self) -> None:
        _started(self.proc, self.port)

    def server_pids(self) -> dict[str, int]:
        return {"floor": self.proc.pid} if self.proc.alive() else {}


class ReplicationFloor(_SubmitTarget):
    name = "replication floor"

    def __init__(self, root: Path, procs: ProcessSet, window_ms: float = 0.0) -> None:
        super().__init__()
        self.port, *replica_ports = free_ports(3)
        data = root / "replication-floor"
        data.mkdir(parents=True, exist_ok=True)
        me = [sys.executable, str(REPLICATION), "--serve"]
        self._replicas = [
            (procs.add(Proc(f"replica{i}", [*me, "replica", "--port", str(port), "--file", str(data / f"replica{i}")],
                            root / "logs" / f"replication-floor-replica{i}.log")), port)
            for i, port in enumerate(replica_ports, 1)]
        addresses = ",".join(f"{HOST}:{port}" for port in replica_ports)
        leader = [*me, "leader", "--port", str(self.port), "--file", str(data / "leader"), "--replicas", addresses,
                  "--window-ms", str(window_ms)]
        self._leader = procs.add(Proc("leader", leader, root / "logs" / "replication-floor-leader.log"))
        self.procs = [self._leader, *(proc for proc, _ in self._replicas)]

    async def start(self) -> None:
        for proc, port in self._replicas:
            _started(proc, port)
        _started(self._leader, self.port)

    def server_pids(self) -> dict[str, int]:
        return {proc.name: proc.pid for proc in self.procs if proc.alive()}

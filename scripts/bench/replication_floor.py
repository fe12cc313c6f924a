"""The replication floor: the least a 3-node Python write path has to do, measured like the floor.

The gRPC floor (floor_server.py) answers SubmitJob at once. This adds only what any replicated,
durable write needs, and nothing of Raft or the state machine:
- the leader gathers the requests that arrive while its previous round is on the wire into one
  batch (as raftsched's ready loop does), sends it on one stream to each of two replica processes,
  and appends it to its own file with fdatasync in a worker thread (as raftsched's fsync thread);
- a replica appends each batch to its file, fdatasyncs it, and acknowledges it;
- the leader answers a batch's requests once its own write and one replica's are durable.
No log index, no terms, no checksums, no RocksDB, no apply, no idempotency lookup: an upper
bound on what raftsched's design can reach with grpc.aio on this machine.

    python scripts/bench/replication_floor.py [--levels 1,16,128] [--seconds 5] [--window-ms 0]

starts the three processes (127.0.0.1, a temporary directory) and prints, per in-flight level,
acknowledged writes/s and CPU per write, beside the plain floor server in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

APPEND = "/replicationfloor.Replica/Append"
_COUNT = struct.Struct(">Q")


def _identity(data: bytes) -> bytes:
    return data


def _append_durably(fd: int, data: bytes) -> None:
    os.write(fd, data)
    os.fdatasync(fd)


@dataclass
class _Round:
    waiting: list[asyncio.Future[None]]  # the requests it answers
    acks_needed: int = 1  # from replicas: with the leader's own copy, a majority of 3
    written: bool = False  # the leader's own copy is durable


class Replica:
    """Appends each batch to one file and acknowledges it once it is durable."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    async def append(self, batches: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        seq = 0
        async for batch in batches:
            _append_durably(self._fd, batch)
            seq += 1
            yield _COUNT.pack(seq)


class Leader(scheduler_pb2_grpc.SchedulerServicer):
    """SubmitJob as the floor answers it, once the request is durable on the leader and a replica."""

    def __init__(self, path: Path, replicas: list[str], window: float) -> None:
        self._window = window
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._ids = itertools.count(1)
        self._replicas = replicas
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._disk = ThreadPoolExecutor(1, thread_name_prefix="fsync")
        self._rounds: dict[int, _Round] = {}
        self._queues: list[asyncio.Queue[bytes]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for address in self._replicas:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            self._queues.append(queue)
            self._tasks.append(asyncio.create_task(self._stream(address, queue)))
        self._tasks.append(asyncio.create_task(self._rounds_loop()))

    async def SubmitJob(self, request: scheduler_pb2.SubmitJobRequest, context: object,
                        ) -> scheduler_pb2.SubmitJobResponse:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((request.spec.SerializeToString(), future))
        self._wake.set()
        await future
        job = jobs_pb2.Job(id=f"j{next(self._ids)}", spec=request.spec, state=jobs_pb2.JOB_STATE_QUEUED)
        return scheduler_pb2.SubmitJobResponse(job=job)

    async def _rounds_loop(self) -> None:
        loop = asyncio.get_running_loop()
        for seq in itertools.count(1):
            await self._wake.wait()
            if self._window:
                await asyncio.sleep(self._window)  # gather more requests into this round
            self._wake.clear()
            batch, self._pending = self._pending, []
            data = b"".join(_COUNT.pack(len(item)) + item for item, _ in batch)
            self._rounds[seq] = _Round([f for _, f in batch])
            for queue in self._queues:
                queue.put_nowait(data)
            await asyncio.sleep(0)  # the replicas' writes start before the leader's own
            # The next round waits for this one's own write (raftsched's group commit does too;
            # not waiting makes more, smaller rounds and measured slower).
            await loop.run_in_executor(self._disk, _append_durably, self._fd, data)
            self._done(seq, own=True)
            await asyncio.sleep(0)

    def _done(self, seq: int, *, own: bool = False, acked: bool = False) -> None:
        state = self._rounds.get(seq)
        if state is None:
            return
        state.written = state.written or own
        state.acks_needed -= acked
        if state.written and state.acks_needed <= 0:
            del self._rounds[seq]
            for future in state.waiting:
                if not future.done():
                    future.set_result(None)

    async def _stream(self, address: str, queue: asyncio.Queue[bytes]) -> None:
        channel = grpc.aio.insecure_channel(address)
        call = channel.stream_stream(APPEND, request_serializer=_identity, response_deserializer=_identity)()

        async def acks() -> None:
            async for ack in call:
                self._done(_COUNT.unpack(ack)[0], acked=True)

        reader = asyncio.create_task(acks())
        try:
            while True:
                await call.write(await queue.get())
        finally:
            reader.cancel()
            await channel.close()


async def serve(role: str, port: int, path: Path, replicas: list[str], window: float) -> None:
    server = grpc.aio.server()
    if role == "replica":
        handler = grpc.stream_stream_rpc_method_handler(Replica(path).append, request_deserializer=_identity,
                                                        response_serializer=_identity)
        service, method = APPEND.strip("/").split("/")
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {method: handler})])
    else:
        leader = Leader(path, replicas, window)
        scheduler_pb2_grpc.add_SchedulerServicer_to_server(leader, server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    if role == "leader":
        await leader.start()
    await server.wait_for_termination()


# --- measuring ------------------------------------------------------------------------------------

async def measure(levels: list[int], seconds: float, window_ms: float) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchlib.floor import GrpcFloor, ReplicationFloor
    from benchlib.phases import measure_level
    from benchlib.procs import ProcessSet

    root = Path(tempfile.mkdtemp(prefix="replication-floor-"))
    procs = ProcessSet()
    systems = (ReplicationFloor(root, procs, window_ms), GrpcFloor(root, procs))
    try:
        for system in systems:
            await system.start()
        print("| in flight | replication floor writes/s | its server CPU µs/write (3 processes) | "
              "gRPC floor writes/s | ratio |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for level in levels:
            replicated, plain = [await measure_level(system, level, seconds, 0.5) for system in systems]
            print(f"| {level} | {replicated['tput']:,.0f} | {replicated['server_cpu_us_per_op']:,.0f} | "
                  f"{plain['tput']:,.0f} | {float(replicated['tput']) / float(plain['tput']):.2f} |", flush=True)
    finally:
        for system in systems:
            await system.close()
        procs.stop_all()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("leader", "replica"), help="run one process of the system")
    parser.add_argument("--port", type=int)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--replicas", default="", help="leader: the replicas' addresses, comma-separated")
    parser.add_argument("--levels", default="1,16,128", help="requests in flight to measure at")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per level")
    parser.add_argument("--window-ms", type=float, default=0.0,
                        help="leader: wait this long after a round's first request before sending it "
                             "(0: at once, as raftsched does)")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    if args.serve:
        if args.port is None or args.file is None:
            parser.error("--serve needs --port and --file")
        replicas = [a for a in args.replicas.split(",") if a]
        asyncio.run(serve(args.serve, args.port, args.file, replicas, args.window_ms / 1000))
    else:
        asyncio.run(measure([int(v) for v in args.levels.split(",")], args.seconds, args.window_ms))


if __name__ == "__main__":
    main()

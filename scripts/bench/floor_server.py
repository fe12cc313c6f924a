"""The benchmark's floor: raftsched's Scheduler service with a SubmitJob that does nothing.

It answers each SubmitJob at once with a job record, with no Raft, no disk and no state machine,
on the same grpc.aio server and event loop (uvloop) as a raftsched node. Its figures are the most
any Python gRPC server can do on this machine with the benchmark's load generator: what is left
between it and raftsched is the cost of replication, durability and the job state machine.

    python scripts/bench/floor_server.py --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools

import grpc

from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc


class NoopScheduler(scheduler_pb2_grpc.SchedulerServicer):
    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def SubmitJob(self, request: scheduler_pb2.SubmitJobRequest, context: object,
                        ) -> scheduler_pb2.SubmitJobResponse:
        job = jobs_pb2.Job(id=f"j{next(self._ids)}", spec=request.spec, state=jobs_pb2.JOB_STATE_QUEUED)
        return scheduler_pb2.SubmitJobResponse(job=job)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(NoopScheduler(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()

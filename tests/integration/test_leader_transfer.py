"""Leadership transfer under writes (issue 19 item 5): the old leader holds the submits that
arrive during the transfer instead of refusing them, and answers each one either with its job
or with UNAVAILABLE naming the new leader (trailing `raftsched-leader`), so a client goes there
at once instead of backing off."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

from .cluster import Cluster

pytestmark = pytest.mark.integration

WRITERS = 16
TRIALS = 3


async def _submit_until(address: str, stop: asyncio.Event, outcomes: list[tuple[str, str, str]]) -> None:
    """Submit to one node in a loop; record (code, details, leader hint) of each answer."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        while not stop.is_set():
            call = stub.SubmitJob(scheduler_pb2.SubmitJobRequest(spec=jobs_pb2.JobSpec(handler="noop")), timeout=10)
            try:
                await call
                outcomes.append(("OK", "", ""))
            except grpc.aio.AioRpcError as err:
                hint = dict(err.trailing_metadata() or ()).get("raftsched-leader", "")
                outcomes.append((err.code().name, err.details() or "", str(hint)))


async def test_submits_during_a_transfer_complete_or_name_the_new_leader(quiet_cluster: Cluster) -> None:
    for _ in range(TRIALS):
        old = quiet_cluster.wait_leader()
        target = next(n for n in quiet_cluster.ids if n != old)
        stop, outcomes = asyncio.Event(), []
        writers = [asyncio.create_task(_submit_until(quiet_cluster.addr[old], stop, outcomes))
                   for _ in range(WRITERS)]
        await asyncio.sleep(0.3)
        before = len(outcomes)
        await asyncio.to_thread(quiet_cluster.client(old).transfer_leader, target)
        await asyncio.to_thread(quiet_cluster.wait_leader)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*writers)
        assert quiet_cluster.leader() == target
        during = outcomes[before:]
        refused = [o for o in during if o[0] != "OK"]
        # Each refusal comes from the old leader once it no longer leads, and says where to go.
        assert all(code == "UNAVAILABLE" and hint == quiet_cluster.addr[target] for code, _, hint in refused), \
            refused[:5]
        assert not any("refused the write for now" in details for _, details, _ in during), during[:5]
        assert sum(o[0] == "OK" for o in during) > 0

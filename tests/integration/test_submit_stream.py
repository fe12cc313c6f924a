"""SubmitJobStream (SPEC §4): answers matched by request_id, a bad job failing alone, submits
from many streams written many to an entry, followers forwarding, idempotency keys, and the
Python client's streamed submit following the leader."""

from __future__ import annotations

import asyncio

import grpc.aio
import pytest

from raftsched.client.aio import AsyncClient
from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

from .cluster import Cluster

pytestmark = pytest.mark.integration

STREAMS = 8
PER_STREAM = 50


async def _stream_all(address: str, requests: list[scheduler_pb2.SubmitJobRequest],
                      ) -> dict[str, scheduler_pb2.SubmitJobStreamResponse]:
    """Send every request on one stream, then read until the node ends it; answers by request_id."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = scheduler_pb2_grpc.SchedulerStub(channel).SubmitJobStream(timeout=30)
        for request in requests:
            await call.write(request)
        await call.done_writing()
        answers = {}
        while (msg := await call.read()) is not grpc.aio.EOF:
            assert msg.request_id not in answers, f"two answers for {msg.request_id}"
            answers[msg.request_id] = msg
        return answers


def _noop(key: str = "") -> jobs_pb2.JobSpec:
    return jobs_pb2.JobSpec(name="streamed", handler="noop", idempotency_key=key)


async def test_streams_answer_each_submit_by_its_id_and_share_entries(quiet_cluster: Cluster) -> None:
    leader = quiet_cluster.wait_leader()
    before = quiet_cluster.local_status(leader).last_log_index
    batches = [[scheduler_pb2.SubmitJobRequest(spec=_noop(), request_id=f"s{s}-{i}") for i in range(PER_STREAM)]
               for s in range(STREAMS)]
    bad = scheduler_pb2.SubmitJobRequest(spec=jobs_pb2.JobSpec(name="no way to run"), request_id="bad")
    batches[0].insert(PER_STREAM // 2, bad)
    results = await asyncio.gather(*(_stream_all(quiet_cluster.addr[leader], b) for b in batches))
    answers = {rid: msg for per_stream in results for rid, msg in per_stream.items()}
    assert set(answers) == {r.request_id for b in batches for r in b}
    refused = answers.pop("bad")
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and refused.error, refused
    assert not refused.HasField("job")
    assert all(a.code == 0 and a.job.id for a in answers.values()), [a for a in answers.values() if a.code][:3]
    assert len({a.job.id for a in answers.values()}) == STREAMS * PER_STREAM
    client = quiet_cluster.client(leader)
    for answer in list(answers.values())[:: PER_STREAM // 2]:
        assert client.get_job(answer.job.id).id == answer.job.id
    entries = quiet_cluster.local_status(leader).last_log_index - before
    # 400 jobs: one entry each would be 400 entries; the batcher shares them (plus any scheduler entries)
    assert entries < STREAMS * PER_STREAM // 2, f"{entries} entries for {STREAMS * PER_STREAM} jobs"


async def test_a_follower_forwards_streamed_submits_and_keys_are_honoured(quiet_cluster: Cluster) -> None:
    leader = quiet_cluster.wait_leader()
    follower = next(n for n in quiet_cluster.ids if n != leader)
    first = await _stream_all(quiet_cluster.addr[follower], [
        scheduler_pb2.SubmitJobRequest(spec=_noop("stream-key-1"), request_id="a"),
        scheduler_pb2.SubmitJobRequest(spec=_noop(), request_id="b")])
    assert first["a"].code == 0 and first["b"].code == 0, first
    again = await _stream_all(quiet_cluster.addr[leader], [
        scheduler_pb2.SubmitJobRequest(spec=_noop("stream-key-1"), request_id="a2")])
    assert again["a2"].existed and again["a2"].job.id == first["a"].job.id, again


async def test_the_client_streams_submits_concurrently_and_follows_the_leader(quiet_cluster: Cluster) -> None:
    leader = quiet_cluster.wait_leader()
    follower = next(n for n in quiet_cluster.ids if n != leader)
    async with AsyncClient([quiet_cluster.addr[follower], quiet_cluster.addr[leader]]) as client:
        answers = await asyncio.gather(*(client.submit_job_streamed(_noop()) for _ in range(200)))
        assert len({a.job.id for a in answers}) == 200
        assert client.leader == quiet_cluster.addr[leader]  # the follower's forwarded answer named it
        bad = jobs_pb2.JobSpec(name="no way to run")
        with pytest.raises(Exception) as refused:
            await client.submit_job_streamed(bad)
        assert getattr(refused.value, "code", "") == "INVALID_ARGUMENT", refused.value

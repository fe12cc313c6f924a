"""The leader's writes to an executor: queued LeaderMessages go out merged, in an order the
executor applies the same way as one by one (dispatcher._coalesce)."""

from __future__ import annotations

import asyncio

import pytest

from raftsched.scheduler import dispatcher
from raftsched.scheduler.dispatcher import _coalesce
from raftsched.v1 import executor_pb2, jobs_pb2

E, J = executor_pb2, jobs_pb2


def ref(job: str, attempt: int = 1) -> jobs_pb2.AttemptRef:
    return J.AttemptRef(job_id=job, attempt=attempt)


def assign(job: str, payload: bytes = b"") -> executor_pb2.LeaderMessage:
    spec = J.JobSpec(handler="noop", payload=payload)
    return E.LeaderMessage(assign=[E.Assignment(job_id=job, attempt=1, spec=spec)])


def queued(*msgs: executor_pb2.LeaderMessage) -> asyncio.Queue[executor_pb2.LeaderMessage]:
    queue: asyncio.Queue[executor_pb2.LeaderMessage] = asyncio.Queue()
    for msg in msgs:
        queue.put_nowait(msg)
    return queue


def test_queued_assignments_acks_and_lease_acks_go_out_as_one_message_in_order() -> None:
    first = assign("j1")
    outbox = queued(E.LeaderMessage(acked=[ref("j0")], heartbeat_ack=E.HeartbeatAck(seq=4, lease_ms=900)),
                    assign("j2"), E.LeaderMessage(heartbeat_ack=E.HeartbeatAck(seq=5, lease_ms=800)))
    merged, held = _coalesce(first, outbox)
    assert held is None and outbox.empty()
    assert [a.job_id for a in merged.assign] == ["j1", "j2"]
    assert [r.job_id for r in merged.acked] == ["j0"]
    assert (merged.heartbeat_ack.seq, merged.heartbeat_ack.lease_ms) == (5, 800)  # the later ack
    assert [a.job_id for a in first.assign] == ["j1"]  # a queued message may be shared: not changed


def test_a_cancel_never_overtakes_an_earlier_assignment() -> None:
    """The executor applies cancels before assignments within one message: merged, a cancel of
    j1/1 would reach it before j1/1's assignment and j1 would run uncancelled."""
    cancel = E.LeaderMessage(cancel=[ref("j1")])
    outbox = queued(assign("j2"), cancel, assign("j3"))
    merged, held = _coalesce(assign("j1"), outbox)
    assert [a.job_id for a in merged.assign] == ["j1", "j2"] and not merged.cancel
    assert held is cancel
    merged, held = _coalesce(held, outbox)  # the cancel starts the next write; later ones may join it
    assert [r.job_id for r in merged.cancel] == ["j1"] and [a.job_id for a in merged.assign] == ["j3"]
    assert held is None


def test_a_write_stays_within_the_coalescing_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher, "COALESCE_BYTES", 3000)
    big = [assign(f"j{i}", b"x" * 1000) for i in range(5)]
    outbox = queued(*big[1:])
    merged, held = _coalesce(big[0], outbox)
    assert len(merged.assign) == 2 and merged.ByteSize() <= 3000
    assert held is big[2]
    alone, _ = _coalesce(assign("huge", b"x" * 5000), queued())  # one message over the bound still goes
    assert alone.assign[0].job_id == "huge"

"""Issue 14's Executor findings, replayed against a real 3-node cluster (insecure mode, 127.0.0.1)
by hand-written executors over the real Connect stream (the generated stubs), beside a real
`raftsched executor` process e1:

1. A Register with a 100 KB id, slots 2^32-1 and 5,000 handler names was committed (the id three
   times in a 134 KB entry) and its names became valid job handlers. Now: INVALID_ARGUMENT naming
   the field, nothing in the log, no executor, no handler; each limit likewise.
2. A Register under the id of a live executor closed its session and failed its running job. Now:
   ALREADY_EXISTS, and the live executor's job runs on untouched. A restarted executor still gets its
   id back: at once when its old stream is gone, and after lease + kill grace of silence otherwise.
3. Results for jobs an executor was never given were acknowledged and committed (then refused at
   apply). Now: refused at the leader (never proposed), counted, the executor told to forget the
   result or kill the attempt; while the late result of an attempt it held and lost is still
   recorded as stale (SPEC §6.4), and a stale attempt it still runs is still cancelled (fencing).

Refusals are checked in `raftsched_executor_messages_refused_total{kind,reason}` on the leader.
The cluster runs a short lease (1 s) and kill grace (0.5 s), and a long executor timeout (15 s), so
that a session's takeover by silence is seen well before the executor would be declared down.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError

from raftsched.client import ClientError
from raftsched.state.commands import decode
from raftsched.v1 import commands_pb2, jobs_pb2
from raftsched.v1 import executor_pb2 as E
from raftsched.v1 import executor_pb2_grpc as E_grpc

from .cluster import wait_for
from .test_hostile_raft import MetricsCluster

pytestmark = pytest.mark.integration

J = jobs_pb2
NODE_FLAGS = ("--lease-ms", "1000", "--kill-grace-ms", "500", "--executor-timeout-ms", "15000")
TAKEOVER_S = 1.5  # lease + kill grace of NODE_FLAGS
E1_FLAGS = ("--heartbeat-ms", "200", "--lease-ms", "1000", "--kill-grace-ms", "500")
STEP = 10.0  # seconds any one exchange with the leader may take
_REFUSED = re.compile(r'^raftsched_executor_messages_refused_total\{kind="([a-z]+)",reason="([a-z-]+)"\} '
                      r'([0-9.e+]+)$', re.M)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsCluster]:
    c = MetricsCluster(tmp_path_factory.mktemp("hostile-executor"), node_flags=NODE_FLAGS)
    try:
        c.start_all()
        c.wait_leader(30)
        c.start_executor("e1", 4, *E1_FLAGS)
        c.wait_executors("e1")
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()


@pytest.fixture
def live(request: pytest.FixtureRequest, cluster: MetricsCluster) -> Iterator[MetricsCluster]:
    yield cluster
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        print(cluster.logs())


# --- helpers --------------------------------------------------------------------------------------


def refused(c: MetricsCluster) -> dict[tuple[str, str], float]:
    """The leader's refused executor messages by (kind, reason)."""
    nid = c.wait_leader()
    with urllib.request.urlopen(f"http://{c.metrics[nid]}/metrics", timeout=2) as response:
        text = response.read().decode()
    return {(kind, reason): float(n) for kind, reason, n in _REFUSED.findall(text)}


def more_refused(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict[str, float]:
    return {f"{k}/{r}": n - before.get((k, r), 0.0) for (k, r), n in after.items() if n > before.get((k, r), 0.0)}


def committed(c: MetricsCluster) -> list[commands_pb2.Command]:
    """Every scheduler command in the leader's committed log."""
    client = c.client(c.wait_leader())
    start = client.read_log(0, 1).first_index
    out: list[commands_pb2.Command] = []
    while True:
        page = client.read_log(start, 1000)
        for entry in page.entries:
            try:
                out.append(decode(entry.data))
            except DecodeError:
                continue
        if not page.entries or page.entries[-1].index >= page.commit_index:
            return out
        start = page.entries[-1].index + 1


def register(executor_id: str, *, slots: int = 1, handlers: tuple[str, ...] = (), seq: int = 1,
             **fields: Any) -> E.ExecutorMessage:
    reg = E.Register(executor_id=executor_id, slots=slots, handlers=list(handlers or (f"only-{executor_id}",)),
                     **fields)
    return E.ExecutorMessage(register=reg, heartbeat=E.Heartbeat(seq=seq))


class Hand:
    """A hand-written executor: one Connect stream, driven message by message."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.call = E_grpc.ExecutorStub(channel).Connect()
        self.seen: list[E.LeaderMessage] = []
        self.seq = 1

    async def open(self, first: E.ExecutorMessage) -> E.LeaderMessage:
        """Register; returns the leader's first answer (raises AioRpcError when refused)."""
        self.seq = first.heartbeat.seq
        await self.call.write(first)
        async with asyncio.timeout(STEP):
            msg = await self.call.read()
        if msg is grpc.aio.EOF:
            await self.call.wait_for_connection()
            raise AssertionError(f"stream closed: {await self.call.code()} {await self.call.details()}")
        self.seen.append(msg)
        return msg

    async def send(self, **fields: Any) -> None:
        await self.call.write(E.ExecutorMessage(**fields))

    async def heartbeat(self, running: list[tuple[str, int]] = ()) -> E.LeaderMessage:  # type: ignore[assignment]
        """Send a heartbeat and wait for its ack."""
        self.seq += 1
        seq = self.seq
        await self.send(heartbeat=E.Heartbeat(seq=seq, running=[_ref(j, a) for j, a in running]))
        return await self.until(lambda m: m.heartbeat_ack.seq == seq, f"ack of heartbeat {seq}")

    async def until(self, found: Any, what: str, timeout: float = STEP) -> E.LeaderMessage:
        """Read until a leader message satisfies `found` (messages seen before count too)."""
        for msg in self.seen:
            if found(msg):
                return msg
        try:
            async with asyncio.timeout(timeout):
                while True:
                    msg = await self.call.read()
                    assert msg is not grpc.aio.EOF, f"the leader closed the stream waiting for {what}"
                    self.seen.append(msg)
                    if found(msg):
                        return msg
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout} s; got {self.seen}") from None

    def close(self) -> None:
        self.call.cancel()


def _ref(job_id: str, attempt: int) -> J.AttemptRef:
    return J.AttemptRef(job_id=job_id, attempt=attempt)


@pytest.fixture
async def channel(live: MetricsCluster) -> AsyncIterator[grpc.aio.Channel]:
    leader = live.wait_leader()
    async with grpc.aio.insecure_channel(live.addr[leader], options=[("grpc.max_send_message_length", 32 << 20)]
                                         ) as ch:
        yield ch


async def refusal(channel: grpc.aio.Channel, first: E.ExecutorMessage) -> grpc.aio.AioRpcError:
    hand = Hand(channel)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await hand.open(first)
        return err.value
    finally:
        hand.close()


async def open_when_free(channel: grpc.aio.Channel, first: E.ExecutorMessage, timeout: float) -> tuple[Hand, int]:
    """Register, retrying while the id is taken (ALREADY_EXISTS); returns the stream and the refusals seen."""
    deadline = time.monotonic() + timeout
    taken = 0
    while True:
        hand = Hand(channel)
        try:
            await hand.open(first)
            return hand, taken
        except grpc.aio.AioRpcError as err:
            hand.close()
            if err.code() != grpc.StatusCode.ALREADY_EXISTS or time.monotonic() > deadline:
                raise
            taken += 1
        await asyncio.sleep(0.1)


# --- 1. registrations out of their limits ---------------------------------------------------------


async def test_the_100kb_register_is_refused_and_changes_nothing(live: MetricsCluster,
                                                                 channel: grpc.aio.Channel) -> None:
    before = refused(live)
    first = register("E" * 100_000, slots=2**32 - 1, handlers=tuple(f"h{i}" for i in range(5000)))
    err = await refusal(channel, first)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert (err.details() or "").startswith("register.executor_id: "), err.details()
    assert "E" * 101 not in (err.details() or "") and len(err.details() or "") < 400
    client = live.client()
    assert all(len(e.id) < 200 for e in client.list_executors().executors)
    with pytest.raises(ClientError) as bad_handler:  # its handler names did not become valid
        client.submit_job(J.JobSpec(handler="h1"))
    assert bad_handler.value.code == "INVALID_ARGUMENT"
    assert not [cmd for cmd in committed(live) if cmd.WhichOneof("body") == "executor_up"
                and len(cmd.executor_up.executor_id) > 200]
    assert more_refused(before, refused(live)) == {"register/invalid": 1}


LIMITS = [
    pytest.param({"executor_id": "e" * 129}, "register.executor_id", id="id-129"),
    pytest.param({"executor_id": "-dash"}, "register.executor_id", id="id-dash"),
    pytest.param({"executor_id": "a/b"}, "register.executor_id", id="id-slash"),
    pytest.param({"executor_id": ""}, "register.executor_id", id="id-empty"),
    pytest.param({"slots": 0}, "register.slots", id="slots-0"),
    pytest.param({"slots": 1025}, "register.slots", id="slots-1025"),
    pytest.param({"labels": {f"k{i}": "v" for i in range(65)}}, "register.labels", id="labels-65"),
    pytest.param({"labels": {"zone": "eu west"}}, "register.labels", id="label-value"),
    pytest.param({"handlers": [f"h{i}" for i in range(257)]}, "register.handlers", id="handlers-257"),
    pytest.param({"handlers": ["x" * 129]}, "register.handlers", id="handler-129"),
    pytest.param({"running": [_ref("j1", 1)] * 1025}, "register.running", id="running-1025"),
    pytest.param({"unacked": [E.TaskFinished(job_id="j1", attempt=1)] * 10_001}, "register.unacked",
                 id="unacked-10001"),
]


@pytest.mark.parametrize(("fields", "field"), LIMITS)
async def test_each_limit_of_a_register_is_refused_naming_its_field(live: MetricsCluster, channel: grpc.aio.Channel,
                                                                    fields: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {"executor_id": "lim1", "slots": 1, "handlers": ["only-lim1"]}
    err = await refusal(channel, E.ExecutorMessage(register=E.Register(**{**base, **fields}),
                                                   heartbeat=E.Heartbeat(seq=1)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert (err.details() or "").startswith(field + ": "), err.details()
    assert "lim1" not in {e.id for e in live.client().list_executors().executors}


async def test_a_register_at_every_limit_is_accepted(live: MetricsCluster, channel: grpc.aio.Channel) -> None:
    eid = "x" * 128
    first = E.ExecutorMessage(
        register=E.Register(executor_id=eid, slots=1024, labels={f"k{i}": "v" for i in range(64)},
                            handlers=[f"only-max.{i}" for i in range(256)]),
        heartbeat=E.Heartbeat(seq=1))
    hand = Hand(channel)
    try:
        await hand.open(first)
        views = {e.id: e for e in live.client().list_executors().executors}
        assert views[eid].slots == 1024 and len(views[eid].handlers) == 256
    finally:
        hand.close()


async def test_a_later_message_out_of_limits_ends_the_stream(live: MetricsCluster, channel: grpc.aio.Channel) -> None:
    before = refused(live)
    hand = Hand(channel)
    try:
        await hand.open(register("big1"))
        await hand.send(heartbeat=E.Heartbeat(seq=2, running=[_ref("j1", 1)] * 1025))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await hand.until(lambda m: False, "the end of the stream")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "heartbeat.running" in (err.value.details() or "")
    finally:
        hand.close()
    assert more_refused(before, refused(live)) == {"message/invalid": 1}


# --- 2. one live session per executor id ----------------------------------------------------------


async def test_a_register_under_a_live_executors_id_is_refused_and_its_job_runs_on(
        live: MetricsCluster, channel: grpc.aio.Channel) -> None:
    client = live.client()
    job = client.submit_job(J.JobSpec(handler="sleep", payload=b"2000", name="live-e1")).job
    live.wait_state(job.id, J.JOB_STATE_RUNNING, 20, client)
    before = refused(live)
    err = await refusal(channel, register("e1", slots=8, handlers=("noop",)))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err
    assert "register.executor_id" in (err.details() or "") and "connected already" in (err.details() or "")
    done = live.wait_state(job.id, {J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED}, 20, client)
    assert [(a.executor, J.AttemptEnd.Name(a.end)) for a in done.attempts] == [("e1", "ATTEMPT_END_SUCCEEDED")]
    views = {e.id: e for e in client.list_executors().executors}
    assert views["e1"].state == J.EXECUTOR_STATE_CONNECTED and views["e1"].slots == 4
    assert more_refused(before, refused(live)) == {"register/duplicate": 1}


async def test_an_executor_back_on_a_new_stream_gets_its_id_once_the_old_one_is_gone(
        live: MetricsCluster, channel: grpc.aio.Channel) -> None:
    old = Hand(channel)
    await old.open(register("q1"))
    err = await refusal(channel, register("q1", seq=5))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    await old.heartbeat()  # the live session was not disturbed
    old.close()  # the process died: its stream ends
    started = time.monotonic()
    new, _ = await open_when_free(channel, register("q1", seq=9), timeout=STEP)
    try:
        assert time.monotonic() - started < TAKEOVER_S, "the id came back only by the silence rule"
        await new.heartbeat()
    finally:
        new.close()


async def test_a_silent_sessions_id_is_taken_over_after_lease_and_kill_grace(
        live: MetricsCluster, channel: grpc.aio.Channel) -> None:
    """The old stream stays open but says nothing (a process frozen, or gone without a FIN)."""
    old = Hand(channel)
    await old.open(register("q2"))
    last_heard = time.monotonic()
    new, taken = await open_when_free(channel, register("q2", seq=5), timeout=STEP)
    waited = time.monotonic() - last_heard
    try:
        assert taken >= 1 and waited >= TAKEOVER_S - 0.2, (taken, waited)
        await _assert_replaced(live, old, new, "q2")
    finally:
        old.close()
        new.close()


async def _assert_replaced(live: MetricsCluster, old: Hand, new: Hand, executor_id: str) -> None:
    """The new stream works, the leader closed the old one, and the executor shows connected."""
    await new.heartbeat()
    with pytest.raises((grpc.aio.AioRpcError, AssertionError)):  # the leader closed the old stream
        await old.until(lambda m: False, "the end of the old stream", timeout=STEP)
    views = {e.id: e for e in live.client().list_executors().executors}
    assert views[executor_id].state == J.EXECUTOR_STATE_CONNECTED


async def test_the_same_process_reconnecting_replaces_its_open_stream_at_once_another_is_refused(
        live: MetricsCluster, channel: grpc.aio.Channel) -> None:
    """A network cut: the agent gave up a stream the leader still holds open. Its new registration
    carries the same incarnation and replaces the old session at once (waiting for lease + kill
    grace would let its lease lapse and kill its tasks); another process's is still refused."""
    old = Hand(channel)
    await old.open(register("q3", incarnation="aaaa"))
    err = await refusal(channel, register("q3", seq=5, incarnation="bbbb"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err
    err = await refusal(channel, register("q3", seq=6))  # an agent that sends no incarnation
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err
    started = time.monotonic()
    new = Hand(channel)
    try:
        await new.open(register("q3", seq=7, incarnation="aaaa"))
        assert time.monotonic() - started < TAKEOVER_S / 2
        await _assert_replaced(live, old, new, "q3")
    finally:
        old.close()
        new.close()


async def test_an_incarnation_over_64_characters_is_refused(live: MetricsCluster,
                                                           channel: grpc.aio.Channel) -> None:
    err = await refusal(channel, register("q4", incarnation="x" * 65))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "register.incarnation" in (err.details() or ""), err.details()


def test_a_real_executor_restarted_beside_its_frozen_old_process_gets_its_id_after_the_silence(
        live: MetricsCluster) -> None:
    """`raftsched executor` retries ALREADY_EXISTS: the frozen process's session is taken over once
    silent for lease + kill grace, not before (its lease has lapsed by then: promise 9)."""
    old = live.start_executor("r1", 1, *E1_FLAGS)
    live.wait_executors("r1")
    os.killpg(old.pid, signal.SIGSTOP)
    frozen_at = time.time()
    try:
        new = live.start_executor("r1", 1, *E1_FLAGS)

        def new_log() -> str:  # both processes write r1.log: the new one's part starts at its marker
            return new.log.read_text(errors="replace").rsplit("=== ", 1)[-1]

        wait_for(lambda: "event=connected" in new_log(), 20, "the new r1 registered")
        text = new_log()
        line = next(ln for ln in text.splitlines() if "event=connected" in ln)
        connected_at = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
        # Its last heartbeat came at most 200 ms before the freeze.
        assert connected_at >= frozen_at + TAKEOVER_S - 0.2 - 0.05, (connected_at - frozen_at, text[-1500:])
        assert text.count("event=register-refused") <= 1  # logged once, however many retries
        views = {e.id: e for e in live.client().list_executors().executors}
        assert views["r1"].state == J.EXECUTOR_STATE_CONNECTED
    finally:
        live.kill_executor("r1")
        os.killpg(old.pid, signal.SIGKILL)  # stopped or not
        assert old.popen is not None
        old.popen.wait(10)


# --- 3. reports on attempts an executor never held ------------------------------------------------


async def test_forged_reports_for_another_executors_job_are_refused_before_the_log(
        live: MetricsCluster, channel: grpc.aio.Channel) -> None:
    client = live.client()
    job = client.submit_job(J.JobSpec(handler="sleep", payload=b"2500", name="victim")).job
    running = live.wait_state(job.id, J.JOB_STATE_RUNNING, 20, client)
    assert running.attempts[-1].executor == "e1"
    before = refused(live)
    forger = Hand(channel)
    try:
        await forger.open(register("f1"))
        forged = [E.TaskFinished(job_id=job.id, attempt=1, end=J.ATTEMPT_END_FAILED, error="forged"),
                  E.TaskFinished(job_id=job.id, attempt=7, end=J.ATTEMPT_END_SUCCEEDED),
                  E.TaskFinished(job_id="j987654321", attempt=1, end=J.ATTEMPT_END_SUCCEEDED),
                  E.TaskFinished(job_id="x" * 5000, attempt=1, end=J.ATTEMPT_END_SUCCEEDED)]
        await forger.send(started=[E.TaskStarted(job_id=job.id, attempt=1)], finished=forged)
        await forger.until(lambda m: len(m.acked) == 4, "the forged results acknowledged (forget them)")
        await forger.until(lambda m: _ref(job.id, 1) in m.cancel, "a cancel of the started report")
        cancels = sum(_ref(job.id, 1) in m.cancel for m in forger.seen)
        await forger.heartbeat(running=[(job.id, 1)])
        await forger.until(lambda m: sum(_ref(job.id, 1) in x.cancel for x in forger.seen) > cancels,
                           "a cancel of the running attempt it was never given")
    finally:
        forger.close()
    done = live.wait_state(job.id, {J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED}, 20, client)
    assert [(a.executor, J.AttemptEnd.Name(a.end)) for a in done.attempts] == [("e1", "ATTEMPT_END_SUCCEEDED")]
    assert done.stale_results_refused == 0  # never proposed, so not even recorded as stale
    log = committed(live)
    assert not [cmd for cmd in log if cmd.WhichOneof("body") in ("finished", "started")
                and getattr(cmd, cmd.WhichOneof("body")).executor == "f1"]
    assert more_refused(before, refused(live)) == {
        "finished/not-held": 2, "finished/unknown-job": 2, "started/not-held": 1, "running/not-held": 1}


async def test_a_lost_attempts_late_result_is_still_recorded_stale_and_a_stale_run_still_cancelled(
        live: MetricsCluster, channel: grpc.aio.Channel) -> None:
    """Promise 4 unchanged: s1 is given attempt 1, re-registers without it (fenced, retried as
    attempt 2 on s1), then reports attempt 1 done and still running."""
    client = live.client()
    first = Hand(channel)
    await first.open(register("s1"))
    # The leader answers a registration before its executor_up commits: wait until s1 is recorded,
    # or the submit may find no executor with its handler (seen once under parallel load).
    wait_for(lambda: any(e.id == "s1" for e in client.list_executors().executors), 10, "s1 recorded")
    job = client.submit_job(J.JobSpec(handler="only-s1", name="stale", max_attempts=3)).job
    await first.until(lambda m: _ref(job.id, 1) in [_ref(a.job_id, a.attempt) for a in m.assign], "assignment 1")
    await first.send(started=[E.TaskStarted(job_id=job.id, attempt=1)])
    live.wait_state(job.id, J.JOB_STATE_RUNNING, 10, client)
    first.close()
    before = refused(live)
    second, _ = await open_when_free(channel, register("s1", seq=10), timeout=STEP)
    try:
        fenced = wait_for(lambda: _if_ended(client, job.id, 0), 10, "attempt 1 fenced at the re-register")
        assert J.AttemptEnd.Name(fenced.attempts[0].end) == "ATTEMPT_END_FENCED"
        await second.send(finished=[E.TaskFinished(job_id=job.id, attempt=1, end=J.ATTEMPT_END_SUCCEEDED)])
        await second.until(lambda m: _ref(job.id, 1) in m.acked, "the late result acknowledged after commit")
        await second.heartbeat(running=[(job.id, 1)])
        await second.until(lambda m: _ref(job.id, 1) in m.cancel, "a cancel of the stale attempt (fencing)")
        await second.heartbeat()  # it is gone: its slot is free again
        late = client.get_job(job.id)
        assert late.stale_results_refused == 1 and J.AttemptEnd.Name(late.attempts[0].end) == "ATTEMPT_END_FENCED"
        assign = await second.until(lambda m: any(a.job_id == job.id and a.attempt == 2 for a in m.assign),
                                    "assignment 2", timeout=STEP + 5)
        assert assign
        await second.send(started=[E.TaskStarted(job_id=job.id, attempt=2)],
                          finished=[E.TaskFinished(job_id=job.id, attempt=2, end=J.ATTEMPT_END_SUCCEEDED)])
        await second.until(lambda m: _ref(job.id, 2) in m.acked, "the result of attempt 2 acknowledged")
    finally:
        second.close()
    done = client.get_job(job.id)
    assert [J.AttemptEnd.Name(a.end) for a in done.attempts] == ["ATTEMPT_END_FENCED", "ATTEMPT_END_SUCCEEDED"]
    assert done.state == J.JOB_STATE_SUCCEEDED
    assert more_refused(before, refused(live)) == {}  # nothing here was refused: all of it was s1's


def _if_ended(client: Any, job_id: str, index: int) -> J.Job | None:
    job = client.get_job(job_id)
    return job if len(job.attempts) > index and job.attempts[index].end else None


# --- the agent ----------------------------------------------------------------------------------


def test_an_executor_that_would_be_refused_fails_at_start_clearly(live: MetricsCluster) -> None:
    proc = live.start_executor("bad1", 1, "--label", "zone=eu west")
    assert proc.popen is not None
    code = proc.popen.wait(30)
    text = proc.log.read_text(errors="replace")
    assert code != 0 and "labels" in text and "Traceback" not in text, text[-2000:]

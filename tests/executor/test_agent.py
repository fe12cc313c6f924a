"""The agent against a scripted leader over real gRPC on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from raftsched.executor import AttemptKey, HandlerRegistry, TaskContext
from raftsched.v1 import jobs_pb2 as jpb

from .conftest import FakeLeader, live_group_members, make_config, running_executor, start_server, wait_group_gone

END = jpb.AttemptEnd.Name


async def wait_pid_file(path: Path, timeout: float = 5.0) -> int:
    async with asyncio.timeout(timeout):
        while not path.exists() or not path.read_text().strip():
            await asyncio.sleep(0.02)  # the task writes it; no event crosses the process boundary
    return int(path.read_text().split()[0])


async def test_register_carries_identity_handlers_and_first_heartbeat(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    registry = HandlerRegistry()

    @registry.handler("custom")
    async def custom(ctx: TaskContext) -> None:
        return None

    async with running_executor(make_config(address, slots=3), registry) as executor:
        await fake.wait_for(lambda: fake.streams)
        await executor.wait_for(lambda: executor.connected and executor.lease_remaining() > 0, 5)
        reg = fake.streams[0].register
        assert (reg.executor_id, reg.slots, dict(reg.labels)) == ("e1", 3, {"zone": "a"})
        assert set(reg.handlers) == {"noop", "sleep", "echo", "fail", "custom"}
        assert not reg.running and not reg.unacked and not reg.draining
        assert fake.heartbeats[0].seq == 1  # the first heartbeat rides with register
        await fake.wait_for(lambda: len(fake.heartbeats) >= 3)
        seqs = [hb.seq for hb in fake.heartbeats]
        assert seqs == sorted(set(seqs))
        assert executor.leader_id == "n1"


async def test_handlers_report_started_and_finished(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    async with running_executor(make_config(address)):
        await fake.wait_for(lambda: fake.streams)
        fake.assign("noop", handler="noop")
        fake.assign("echo", handler="echo", payload=b"hello")
        fake.assign("fail", handler="fail", payload=b"boom")
        fake.assign("sleep", handler="sleep", payload=b"50")
        fake.assign("bad", handler="no-such-handler")
        fake.assign("badsleep", handler="sleep", payload=b"soon")
        results = {j: await fake.wait_result(j) for j in ("noop", "echo", "fail", "sleep", "bad", "badsleep")}
    assert END(results["noop"].end) == "ATTEMPT_END_SUCCEEDED"
    assert (END(results["echo"].end), results["echo"].output_tail) == ("ATTEMPT_END_SUCCEEDED", b"hello")
    assert END(results["fail"].end) == "ATTEMPT_END_FAILED" and "boom" in results["fail"].error
    assert END(results["sleep"].end) == "ATTEMPT_END_SUCCEEDED"
    assert END(results["bad"].end) == "ATTEMPT_END_FAILED"
    assert "unknown handler 'no-such-handler'" in results["bad"].error
    assert END(results["badsleep"].end) == "ATTEMPT_END_FAILED" and "ASCII digits" in results["badsleep"].error
    assert {("noop", 1), ("echo", 1), ("fail", 1), ("sleep", 1)} <= set(fake.started)


async def test_a_task_that_ends_at_once_is_reported_started_and_finished_in_one_message(
        leader: tuple[FakeLeader, str]) -> None:
    """One message, so the leader replicates both reports in one round; a longer task's start
    is still reported while it runs."""
    fake, address = leader
    async with running_executor(make_config(address)):
        await fake.wait_for(lambda: fake.streams)
        fake.assign("quick", handler="noop")
        await fake.wait_result("quick")
        fake.assign("slow", handler="sleep", payload=b"300")
        await fake.wait_for(lambda: ("slow", 1) in fake.started)
        assert fake.result("slow") is None  # its start was not held back until its end
        await fake.wait_result("slow")
    [quick] = [m for m in fake.reports if any(f.job_id == "quick" for f in m.finished)]
    assert [(s.job_id, s.attempt) for s in quick.started] == [("quick", 1)]


async def test_command_gets_payload_env_and_exit_code(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    script = ('echo "$RAFTSCHED_JOB_ID $RAFTSCHED_ATTEMPT $RAFTSCHED_FENCING_TOKEN $RAFTSCHED_EXECUTOR_ID"; cat; '
              'echo oops >&2; exit 3')
    async with running_executor(make_config(address, id="exec-7")):
        await fake.wait_for(lambda: fake.streams)
        fake.assign("j7", 2, command=["sh", "-c", script], payload=b"from-stdin\n")
        fake.assign("ok", command=["sh", "-c", "echo fine"])
        fake.assign("missing", command=["/nonexistent/raftsched-test-binary"])
        failed, ok, missing = (await fake.wait_result("j7", 2), await fake.wait_result("ok"),
                               await fake.wait_result("missing"))
    assert (END(failed.end), failed.exit_code) == ("ATTEMPT_END_FAILED", 3)
    assert failed.output_tail == b"j7 2 j7:2 exec-7\nfrom-stdin\noops\n"
    assert ("j7", 2) in fake.started
    assert (END(ok.end), ok.exit_code, ok.output_tail) == ("ATTEMPT_END_SUCCEEDED", 0, b"fine\n")
    assert END(missing.end) == "ATTEMPT_END_FAILED" and "cannot start" in missing.error


async def test_output_tail_is_bounded(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    async with running_executor(make_config(address, output_tail_bytes=16)):
        await fake.wait_for(lambda: fake.streams)
        fake.assign("big", command=["sh", "-c", "i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done"])
        result = await fake.wait_result("big")
    assert result.output_tail == b"line498\nline499\n"


async def test_cancel_kills_the_whole_process_group(leader: tuple[FakeLeader, str], tmp_path: Path) -> None:
    fake, address = leader
    pid_file = tmp_path / "pid"
    script = f"echo $$ > {pid_file}; sleep 30 & wait"
    async with running_executor(make_config(address)) as executor:
        await fake.wait_for(lambda: fake.streams)
        fake.assign("c1", command=["sh", "-c", script])
        pgid = await wait_pid_file(pid_file)
        assert len(live_group_members(pgid)) >= 2  # the shell and its sleep
        fake.cancel("c1")
        result = await fake.wait_result("c1", timeout=3)
        await wait_group_gone(pgid, timeout=1)
        assert END(result.end) == "ATTEMPT_END_CANCELLED"
        assert executor.running == []


async def test_sigterm_ignoring_task_is_sigkilled_after_grace(leader: tuple[FakeLeader, str],
                                                            tmp_path: Path) -> None:
    fake, address = leader
    pid_file = tmp_path / "pid"
    script = f"trap '' TERM; echo $$ > {pid_file}; while :; do sleep 0.05; done"
    async with running_executor(make_config(address, kill_grace_ms=200)):
        await fake.wait_for(lambda: fake.streams)
        fake.assign("stubborn", command=["sh", "-c", script])
        pgid = await wait_pid_file(pid_file)
        began = time.monotonic()
        fake.cancel("stubborn")
        result = await fake.wait_result("stubborn", timeout=3)
        await wait_group_gone(pgid, timeout=1)
    assert 0.15 < time.monotonic() - began < 2.0
    assert END(result.end) == "ATTEMPT_END_CANCELLED" and result.exit_code == -signal.SIGKILL


async def test_timeout_kills_the_attempt(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    async with running_executor(make_config(address)):
        await fake.wait_for(lambda: fake.streams)
        began = time.monotonic()
        fake.assign("slow", command=["sleep", "30"], timeout_ms=300)
        fake.assign("slowh", handler="sleep", payload=b"30000", timeout_ms=300)
        slow, slowh = await fake.wait_result("slow", timeout=3), await fake.wait_result("slowh", timeout=3)
    assert time.monotonic() - began < 2.0
    assert END(slow.end) == "ATTEMPT_END_TIMED_OUT" and "300 ms" in slow.error
    assert END(slowh.end) == "ATTEMPT_END_TIMED_OUT"


async def test_slots_are_never_exceeded(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    async with running_executor(make_config(address, slots=2)) as executor:
        await fake.wait_for(lambda: fake.streams)
        fake.assign("a", handler="sleep", payload=b"5000", slots=2)
        fake.assign("b", handler="noop")
        refused = await fake.wait_result("b")
        assert (END(refused.end), refused.error) == ("ATTEMPT_END_FAILED", "no free slots")
        assert executor.running == [AttemptKey("a", 1)]
        fake.cancel("a")
        await fake.wait_result("a")
        fake.assign("c", handler="noop")
        assert END((await fake.wait_result("c")).end) == "ATTEMPT_END_SUCCEEDED"


async def test_assignment_without_lease_is_refused(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    fake.ack_heartbeats = False
    async with running_executor(make_config(address)):
        await fake.wait_for(lambda: fake.streams)
        fake.assign("early", handler="noop")
        result = await fake.wait_result("early")
    assert (END(result.end), result.error) == ("ATTEMPT_END_FENCED", "lease not held")
    assert ("early", 1) not in fake.started


async def test_lease_lapse_kills_tasks_and_reports_fenced_after_reconnect(
    leader: tuple[FakeLeader, str], tmp_path: Path
) -> None:
    fake, address = leader
    fake.ack_results = False  # keep the result unacked so the re-register must carry it
    pid_file = tmp_path / "pid"
    config = make_config(address, lease_ms=600, kill_grace_ms=300)
    async with running_executor(config) as executor:
        await fake.wait_for(lambda: fake.streams)
        fake.assign("long", command=["sh", "-c", f"echo $$ > {pid_file}; sleep 30 & wait"])
        fake.assign("longh", handler="sleep", payload=b"30000")
        pgid = await wait_pid_file(pid_file)
        fake.ack_heartbeats = False
        last_ack = time.monotonic()
        await wait_group_gone(pgid, timeout=(600 + 300) / 1000 + 0.5)
        assert time.monotonic() - last_ack < 0.6 + 0.3 + 0.3
        await fake.wait_for(lambda: len(fake.streams) >= 2)  # the silent stream was dropped
        await executor.wait_for(lambda: not executor.running, 2)
        await fake.wait_for(lambda: len(fake.streams[-1].register.unacked) == 2)
        unacked = {(f.job_id, END(f.end), f.error) for f in fake.streams[-1].register.unacked}
    assert unacked == {("long", "ATTEMPT_END_FENCED", "lease expired"),
                       ("longh", "ATTEMPT_END_FENCED", "lease expired")}


async def test_short_stream_break_kills_nothing(leader: tuple[FakeLeader, str], tmp_path: Path) -> None:
    fake, address = leader
    pid_file = tmp_path / "pid"
    async with running_executor(make_config(address, lease_ms=2000)) as executor:
        await fake.wait_for(lambda: fake.streams)
        fake.assign("keep", 4, command=["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"])
        pgid = await wait_pid_file(pid_file)
        await fake.wait_for(lambda: ("keep", 4) in fake.started)
        fake.break_stream()
        await fake.wait_for(lambda: len(fake.streams) >= 2)
        reg = fake.streams[1].register
        assert [(r.job_id, r.attempt) for r in reg.running] == [("keep", 4)]
        await fake.wait_for(lambda: len(fake.heartbeats) >= 10)  # well past the break
        assert live_group_members(pgid) == [pgid]
        assert executor.running == [AttemptKey("keep", 4)] and fake.result("keep", 4) is None
        fake.cancel("keep", 4)
        assert END((await fake.wait_result("keep", 4)).end) == "ATTEMPT_END_CANCELLED"


async def test_results_finished_while_disconnected_are_re_sent_in_register(
    leader: tuple[FakeLeader, str]
) -> None:
    fake, address = leader
    async with running_executor(make_config(address, lease_ms=2000)):
        await fake.wait_for(lambda: fake.streams)
        fake.ack_results = False
        fake.assign("r1", handler="noop")
        await fake.wait_result("r1")
        fake.ack_results = True
        fake.break_stream()
        await fake.wait_for(lambda: len(fake.streams) >= 2)
        assert [f.job_id for f in fake.streams[1].register.unacked] == ["r1"]


async def test_follows_not_leader_redirect(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    follower = FakeLeader(leader_id="n2")
    follower.redirect_to = address
    server, follower_address = await start_server(follower)
    try:
        async with running_executor(make_config(follower_address)) as executor:
            await fake.wait_for(lambda: fake.streams)
            await executor.wait_for(lambda: executor.connected, 5)
            assert follower.refusals >= 1 and not follower.streams
            assert executor.leader_id == "n1"
    finally:
        await server.stop(0)


async def test_unknown_leader_hint_falls_back_to_the_address_list(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    follower = FakeLeader(leader_id="n2")
    follower.redirect_to = ""  # a follower that does not know the leader yet
    server, follower_address = await start_server(follower)
    try:
        async with running_executor(make_config(follower_address, cluster=(follower_address, address))):
            await fake.wait_for(lambda: fake.streams)
            assert follower.refusals >= 1
    finally:
        await server.stop(0)


async def test_drain_finishes_work_refuses_new_and_exits_zero(leader: tuple[FakeLeader, str]) -> None:
    fake, address = leader
    from raftsched.executor import Executor

    executor = Executor(make_config(address), handlers=HandlerRegistry())
    task = asyncio.create_task(executor.run())
    try:
        await fake.wait_for(lambda: fake.streams)
        fake.assign("work", handler="sleep", payload=b"300")
        await fake.wait_for(lambda: ("work", 1) in fake.started)
        executor.drain()
        await fake.wait_for(lambda: any(hb.draining for hb in fake.heartbeats))
        fake.assign("late", handler="noop")
        late = await fake.wait_result("late")
        assert (END(late.end), late.error) == ("ATTEMPT_END_FENCED", "executor draining")
        async with asyncio.timeout(5):
            assert await task == 0
        assert END(fake.result("work").end) == "ATTEMPT_END_SUCCEEDED"  # type: ignore[union-attr]
    finally:
        executor.stop()
        await asyncio.gather(task, return_exceptions=True)


async def test_stop_kills_running_tasks_and_exits_one(leader: tuple[FakeLeader, str], tmp_path: Path) -> None:
    fake, address = leader
    from raftsched.executor import Executor

    pid_file = tmp_path / "pid"
    executor = Executor(make_config(address), handlers=HandlerRegistry())
    task = asyncio.create_task(executor.run())
    try:
        await fake.wait_for(lambda: fake.streams)
        fake.assign("s", command=["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"])
        pgid = await wait_pid_file(pid_file)
        executor.drain()
        executor.stop()  # the "second signal"
        async with asyncio.timeout(5):
            assert await task == 1
        assert live_group_members(pgid) == []
        assert END((await fake.wait_result("s")).end) == "ATTEMPT_END_FENCED"
    finally:
        executor.stop()
        await asyncio.gather(task, return_exceptions=True)
        if live_group_members(pgid if "pgid" in locals() else -1):
            os.killpg(pgid, signal.SIGKILL)

"""The task guard process, and a real executor process frozen with SIGSTOP or drained by SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from raftsched.executor.guard import GUARD_SCRIPT, TaskGuard
from raftsched.v1 import executor_pb2 as epb
from raftsched.v1 import jobs_pb2 as jpb

from .conftest import FakeLeader, live_group_members, wait_group_gone
from .test_agent import wait_pid_file

END = jpb.AttemptEnd.Name


@contextlib.asynccontextmanager
async def session_process(*argv: str) -> AsyncIterator[int]:
    """A process in its own session (like a task); its group is SIGKILLed at the end."""
    proc = await asyncio.create_subprocess_exec(*argv, start_new_session=True)
    try:
        yield proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def test_guard_kills_the_group_when_not_renewed() -> None:
    async with session_process("sh", "-c", "sleep 30 & wait") as pgid:
        guard = await TaskGuard.start(pgid, remaining_s=0.3, grace_s=0.2)
        assert guard is not None
        began = time.monotonic()
        await wait_group_gone(pgid, timeout=3)
        assert 0.25 < time.monotonic() - began < 2.0
        assert await guard.release()  # it reports that it killed


async def test_renewed_guard_leaves_the_task_alone_and_release_ends_it() -> None:
    async with session_process("sleep", "30") as pgid:
        guard = await TaskGuard.start(pgid, remaining_s=0.3, grace_s=0.1)
        assert guard is not None
        for _ in range(8):  # 800 ms, well past the first 300 ms lease
            guard.renew(0.3)
            await asyncio.sleep(0.1)  # the renewal cadence is what is under test
        assert live_group_members(pgid) == [pgid]
        assert not await guard.release()
        assert live_group_members(pgid) == [pgid]


async def test_guard_orphaned_by_a_dead_agent_still_kills_at_the_deadline() -> None:
    async with session_process("sleep", "30") as pgid:
        guard = await asyncio.create_subprocess_exec(
            sys.executable, "-I", GUARD_SCRIPT, str(pgid), "100", "300", stdin=asyncio.subprocess.PIPE
        )
        assert guard.stdin is not None
        guard.stdin.close()  # what the guard sees when the agent dies
        await wait_group_gone(pgid, timeout=3)
        async with asyncio.timeout(3):
            await guard.wait()


def reported(fake: FakeLeader, job_id: str) -> list[epb.TaskFinished]:
    everything = list(fake.finished) + [f for st in fake.streams for f in st.register.unacked]
    return [f for f in everything if f.job_id == job_id]


EXECUTOR_SCRIPT = """
import logging, sys
from raftsched.config import ExecutorConfig
from raftsched.executor import main
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
sys.exit(main(ExecutorConfig(id="ex", cluster=(sys.argv[1],), heartbeat_ms=100, lease_ms=600,
                             kill_grace_ms=300, drain_ack_timeout_ms=2000)))
"""


@contextlib.asynccontextmanager
async def executor_process(address: str, log_file: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log_file.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", EXECUTOR_SCRIPT, address, stderr=log, start_new_session=True
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def test_frozen_executor_cannot_leave_its_task_running(
    leader: tuple[FakeLeader, str], tmp_path: Path
) -> None:
    fake, address = leader
    fake.ack_results = False
    pid_file = tmp_path / "pid"
    async with executor_process(address, tmp_path / "executor.log") as proc:
        await fake.wait_for(lambda: fake.streams)
        fake.assign("frozen", command=["sh", "-c", f"echo $$ > {pid_file}; sleep 30 & wait"])
        pgid = await wait_pid_file(pid_file)
        await fake.wait_for(lambda: ("frozen", 1) in fake.started)
        os.kill(proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            await wait_group_gone(pgid, timeout=3)
            assert time.monotonic() - stopped_at < 0.6 + 0.3 + 0.5
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        # After SIGCONT it reconnects (the stream went silent) and reports the attempt FENCED, in
        # register.unacked or as a finished item, depending on which it noticed first.
        await fake.wait_for(lambda: reported(fake, "frozen"))
        assert END(reported(fake, "frozen")[0].end) == "ATTEMPT_END_FENCED"


async def test_sigterm_drains_a_real_executor_process(leader: tuple[FakeLeader, str], tmp_path: Path) -> None:
    fake, address = leader
    async with executor_process(address, tmp_path / "executor.log") as proc:
        await fake.wait_for(lambda: fake.streams)
        fake.assign("d", command=["sh", "-c", "sleep 0.3; echo done"])
        await fake.wait_for(lambda: ("d", 1) in fake.started)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            assert await proc.wait() == 0
    result = fake.result("d")
    assert result is not None and (END(result.end), result.output_tail) == ("ATTEMPT_END_SUCCEEDED", b"done\n")
    assert any(hb.draining for hb in fake.heartbeats)

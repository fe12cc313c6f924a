"""The task guard's deadline must be the agent's lease deadline, not that deadline shifted by how long
the guard took to start (SPEC §6 promise 9: the executor's view of the lease ends before the
leader's, and a frozen agent's tasks stop within lease + kill grace).

Found by test_leases.py's frozen-executor scenario on a loaded machine: a task started 175 ms after
the last acknowledged heartbeat was SIGTERMed by its guard 77 ms *after* the leader's view of that
lease had ended, because the guard counts the remaining time handed to it from its own start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from raftsched.executor.guard import TaskGuard

from .harness import wait_for

pytestmark = pytest.mark.integration

# A stand-in task: records on CLOCK_MONOTONIC (shared by every process) when SIGTERM reached it.
TARGET = (
    "import pathlib, signal, sys, time\n"
    "out = pathlib.Path(sys.argv[1])\n"
    "def term(*_):\n"
    "    out.with_suffix('.tmp').write_text(repr(time.monotonic()))\n"
    "    out.with_suffix('.tmp').rename(out)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "out.with_suffix('.ready').write_text('1')\n"
    "time.sleep(60)\n"
)
LEASE_LEFT_S = 1.0
GUARD_STARTUP_DELAY_S = 0.5  # a guard slow to start: CPU contention, a swap storm
SLACK_S = 0.25  # SIGTERM delivery and wake-ups on a loaded machine; far below the delay above


# Regression: the guard once took the lease as time *remaining* and counted it from its own start
# (and each renewal from when it read the line), so a guard that started or read late killed late,
# after the leader's view of the lease had ended. It now takes an absolute CLOCK_MONOTONIC deadline.
async def test_a_slow_starting_guard_still_kills_at_the_agents_lease_deadline(tmp_path: Path) -> None:
    stamp = tmp_path / "term"
    task = await asyncio.create_subprocess_exec(sys.executable, "-c", TARGET, str(stamp), start_new_session=True)
    guard = None
    try:
        wait_for(lambda: stamp.with_suffix(".ready").exists(), 20, "the stand-in task is up", 0.02)
        deadline = time.monotonic() + LEASE_LEFT_S  # the agent reads its lease: 1 s left
        guard = await TaskGuard.start(task.pid, remaining_s=LEASE_LEFT_S, grace_s=0.5)
        assert guard is not None
        os.kill(guard.pid, signal.SIGSTOP)  # before its interpreter is up (it takes tens of ms)
        await asyncio.sleep(GUARD_STARTUP_DELAY_S)  # the delay under test, not a wait for a condition
        os.kill(guard.pid, signal.SIGCONT)
        wait_for(lambda: stamp.exists(), 20, "the guard SIGTERMs the task", 0.02)
        late = float(stamp.read_text()) - deadline
        assert late < SLACK_S, (
            f"the guard sent SIGTERM {late * 1000:.0f} ms after the lease deadline it was given "
            f"(it started {GUARD_STARTUP_DELAY_S * 1000:.0f} ms late)")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(task.pid, signal.SIGKILL)
        await task.wait()
        if guard is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(guard.pid, signal.SIGCONT)
            await guard.release()

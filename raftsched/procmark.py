"""Processes marked with an environment variable, so that a test harness can stop every process
of one run: tasks and their guards live in sessions of their own, out of reach of killpg, and
inherit the variable from the executor that started them. Only processes carrying the exact
`KEY=run id` pair are touched, never processes found by name."""

from __future__ import annotations

import os
import signal


def kill_marked(key: str, run_id: str) -> int:
    """SIGKILL every process whose environment holds `key=run_id`; returns how many."""
    marker = f"{key}={run_id}".encode()
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker not in f.read().split(b"\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            killed += 1
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return killed

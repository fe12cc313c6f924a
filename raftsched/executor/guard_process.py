"""The guard: a tiny process that kills one task's process group when the lease stops being renewed.

Run as `python -I guard_process.py PGID GRACE_MS DEADLINE_NS` (by path, not `-m`: importing the
raftsched package would pull in grpc and make every task start slower). Standard library only.

Why it exists: the agent's own lease watchdog cannot run while the agent is frozen (SIGSTOP, a
paused VM thread, a debugger), but the task it supervises keeps running in its own session. The
guard is a separate process, in a session of its own, so it keeps counting (SPEC §6 promise 9).

Protocol on stdin, one line each:
  `renew NS`  the lease now ends at NS, an absolute CLOCK_MONOTONIC time in nanoseconds. That
              clock is shared by every process on the machine, so the deadline does not slip by
              however long the guard took to start or to read the line.
  `release`   the task ended or the agent took over its killing; exit without touching the group
End of input without `release` means the agent died: keep the last deadline, kill when it passes.
When the deadline passes: SIGTERM the group, SIGKILL it after GRACE_MS, exit 3 (EXIT_KILLED).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

MAX_LINE = 64
EXIT_RELEASED = 0
EXIT_KILLED = 3  # tells the agent the task ended because the lease lapsed


def kill_group(pgid: int, grace_s: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return  # the group is gone already
        if sig == signal.SIGTERM:
            time.sleep(grace_s)


def apply_line(line: bytes, deadline: float) -> float | None:
    """The new deadline after one command line; None means released."""
    words = line.split()
    if words == [b"release"]:
        return None
    if len(words) == 2 and words[0] == b"renew" and words[1].isdigit():
        return max(deadline, int(words[1]) / 1e9)
    return deadline  # ignore what we do not understand rather than kill on a typo


def guard(pgid: int, grace_s: float, deadline: float) -> int:
    buf, open_input = b"", True
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            kill_group(pgid, grace_s)
            return EXIT_KILLED
        if not open_input:
            time.sleep(left)
            continue
        ready, _, _ = select.select([0], [], [], left)
        if not ready:
            continue
        chunk = os.read(0, 4096)
        if not chunk:
            open_input = False  # the agent is gone: nobody renews any more
            continue
        buf += chunk
        *lines, buf = buf.split(b"\n")
        buf = buf[-MAX_LINE:]
        for line in lines:
            new_deadline = apply_line(line, deadline)
            if new_deadline is None:
                return EXIT_RELEASED
            deadline = new_deadline


def main(argv: list[str]) -> int:
    pgid, grace_ms, deadline_ns = (int(a) for a in argv[1:4])
    # Terminal signals meant for the agent (Ctrl-C) must not take the guard with them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return guard(pgid, grace_ms / 1000.0, deadline_ns / 1e9)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

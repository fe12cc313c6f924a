"""Loaded (from PYTHONPATH) by every process the chaos harness runs under libfaketime.

libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1 answers EINVAL to
clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), which is how Python 3.11 implements
time.sleep(). select() with a timeout is relative and unaffected, so sleep with it instead.
Nothing else changes: the wall clock is libfaketime's, the monotonic clock the kernel's.
"""

from __future__ import annotations

import select
import time

_monotonic = time.monotonic


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    end = _monotonic() + seconds
    while True:
        left = end - _monotonic()
        if left <= 0:
            return
        select.select([], [], [], left)


time.sleep = _sleep

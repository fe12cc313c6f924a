"""The wall clock in the one unit raftsched stamps times with: integer milliseconds since the epoch.

Read only at the edges (the leader stamping a command, views, the CLI); the state machine reads the
time from the entry, never from here.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)

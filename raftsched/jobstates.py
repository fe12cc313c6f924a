"""Job states every part of raftsched agrees on (the state machine, the servicers, the clients,
the console): defined here once."""

from __future__ import annotations

from raftsched.v1 import jobs_pb2

# A job in one of these states never changes state again (SPEC §3).
TERMINAL: frozenset[int] = frozenset({
    jobs_pb2.JOB_STATE_SUCCEEDED,
    jobs_pb2.JOB_STATE_FAILED,
    jobs_pb2.JOB_STATE_CANCELLED,
    jobs_pb2.JOB_STATE_SKIPPED,
})

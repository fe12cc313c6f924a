"""The replicated scheduler state machine: versioned commands, deterministic `apply`, snapshots.

    machine.py    SchedulerState: apply, queries, listeners, snapshot/restore (RocksDB write-through)
    handlers.py   one handler per command, dispatched on the command's oneof
    lifecycle.py  retry/backoff, success, cancel and the SKIPPED cascade
    model.py      the in-memory jobs, executors and their incremental indexes
    commands.py   builders and `encode` for the leader;  validate.py  job spec limits
    snapshot.py   the versioned, checksummed snapshot format
"""

from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState
from raftsched.state.validate import ValidationError, validate_spec

__all__ = ["COLUMN_FAMILIES", "SchedulerState", "ValidationError", "validate_spec"]

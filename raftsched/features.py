"""What this node's software understands beyond the first release, as bits that a follower sends
its leader with every append reply (raft.proto, AppendEntriesResponse.features).

A leader writes a new form of command only while every other member reports its bit. During a
rolling upgrade (docs/operations.md) a node of the earlier version applies the new leader's
entries until it is restarted, and it must never meet a form it would misread: an unknown field
is skipped without a word, so its state would drift from the others'.
"""

from __future__ import annotations

from typing import Final

STARTS_IN_RESULTS: Final = 1  # AttemptsFinishedCmd.started: starts applied before the results
# FireScheduleCmd.release_when_due and ReleaseBufferedCmd: a buffered time fires only once due
RELEASE_WHEN_DUE: Final = 2
SUPPORTED: Final = STARTS_IN_RESULTS | RELEASE_WHEN_DUE  # what this version reads

"""Planted bugs of the scheduling core, for the simulation's teeth tests only (STYLE: a checker
that never fails checks nothing). Production code passes `NO_BUGS`; each flag restores one
mistake this layer has made or could make, and `tests/scheduler/test_teeth.py` proves the
simulation finds it within a bounded number of seeds."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Bug(enum.StrEnum):
    # read a re-registration's heartbeat before its lost attempts are fenced (the real bug, issue 15)
    FENCE_AFTER_HEARTBEAT = "fence-after-heartbeat"
    # the executor measures its lease from the ack's arrival, not from sending the heartbeat
    LEASE_FROM_RECEIVE = "lease-from-receive"
    DOWN_BEFORE_TIMEOUT = "down-before-timeout"  # declare an executor down after the lease, before the executor timeout
    RESEND_UNCHECKED = "resend-unchecked"  # re-send an assignment without checking the attempt is still current
    FIRE_WITHOUT_DEDUP = "fire-without-dedup"  # fire scheduled times without the per-time dedup of the state machine
    CATCHUP_IGNORES_WINDOW = "catchup-ignores-window"  # catch up late times however old (the window ignored)
    ACK_BEFORE_COMMIT = "ack-before-commit"  # acknowledge an executor's results before they commit
    # buffer a time without release_when_due: it fires when the job ahead ends, however early
    RELEASE_ON_END = "release-on-end"


@dataclass(frozen=True, slots=True)
class Bugs:
    planted: frozenset[Bug] = frozenset()

    def __contains__(self, bug: Bug) -> bool:
        return bug in self.planted

    @classmethod
    def of(cls, *names: str) -> Bugs:
        return cls(frozenset(Bug(name) for name in names if name))


NO_BUGS = Bugs()

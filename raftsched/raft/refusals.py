"""Refused Raft messages: why (a typed reason), how many, and which to log (issue 14, SPEC promise 15).

A refused message changes nothing: it is counted here and dropped before it touches the term, the
vote, the log, the commit index or any timer. The transport refuses what it can see alone (a wrong
recipient, a certificate that names another node, out-of-range numbers, malformed entries); the
core refuses what needs its state (senders that are not members, commits its log does not back).

Everything here is pure: `RefusalLog` is told the time, it never reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from raftsched.quoting import quote


class Reason(StrEnum):
    """Why a message was refused; the value is the `reason` label of the Prometheus series."""

    UNPARSABLE = "unparsable"  # protobuf the core has no meaning for (an unknown entry type)
    WRONG_RECIPIENT = "wrong-recipient"  # `to` is not this node
    FROM_SELF = "from-self"  # `from` is this node
    FROM_NOT_CERTIFICATE = "from-not-certificate"  # TLS: `from` is not the node id the caller's certificate names
    SENDER_CHANGED = "sender-changed"  # a message on an append stream names another sender than the stream
    TERM_OUT_OF_RANGE = "term-out-of-range"  # a term above MAX_TERM
    INDEX_OUT_OF_RANGE = "index-out-of-range"  # an index (or count) above MAX_INDEX
    ENTRIES_NOT_CONTIGUOUS = "entries-not-contiguous"  # entries not at prev+1, prev+2, ...
    BAD_LOG_TERMS = "bad-log-terms"  # terms no correct log holds: decreasing, above the message's, 0 off index 0
    NOT_A_MEMBER = "not-a-member"  # the sender is in no configuration this node knows
    NOT_A_VOTER = "not-a-voter"  # a vote request from a node that is not a voter
    TERM_JUMP = "term-jump"  # a term more than MAX_TERM_JUMP beyond ours
    DISRUPTS_LEADER = "disrupts-leader"  # TimeoutNow not from the leader of our term
    COMMIT_BEYOND_LOG = "commit-beyond-log"  # a leader's commit past our last entry
    COMMIT_NOT_MATCHED = "commit-not-matched"  # a leader's commit at an entry whose term differs from ours
    RESPONSE_AHEAD = "response-ahead"  # a response acknowledging more than this leader has or sent

    @property
    def loud(self) -> bool:
        """A leader claiming a commit our log cannot back: etcd panics here; we refuse and log an error."""
        return self in _LOUD


_LOUD = frozenset({Reason.COMMIT_BEYOND_LOG, Reason.COMMIT_NOT_MATCHED})
RECENT_LIMIT = 64  # refusals kept for the driver to log; past this the oldest are only counted


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    kind: str  # the message type, e.g. "VoteRequest"
    frm: str
    term: int
    detail: str  # what was wrong, for the log (bounded: numbers and ids only)


class RefusalCounter:
    """Refused messages by reason, and the latest ones not yet handed out for logging."""

    def __init__(self, keep: int = RECENT_LIMIT) -> None:
        self.counts: dict[Reason, int] = {}
        self.total = 0
        self._unlogged: deque[Refusal] = deque(maxlen=keep)

    def add(self, refusal: Refusal) -> None:
        self.counts[refusal.reason] = self.counts.get(refusal.reason, 0) + 1
        self.total += 1
        self._unlogged.append(refusal)

    def take_unlogged(self) -> list[Refusal]:
        taken = list(self._unlogged)
        self._unlogged.clear()
        return taken


class RefusalLog:
    """Rate limiting for refusal log lines: at most one line per reason per `interval` seconds,
    saying how many more of that reason were refused since the last line."""

    def __init__(self, interval: float = 10.0) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self._last: dict[Reason, float] = {}  # reason -> when its last line was written
        self._suppressed: dict[Reason, int] = {}

    def lines(self, refusals: list[Refusal], now: float) -> list[tuple[Refusal, int]]:
        """The refusals to log now, each with the number of its reason suppressed before it."""
        out: list[tuple[Refusal, int]] = []
        for refusal in refusals:
            reason = refusal.reason
            last = self._last.get(reason)
            if last is not None and now - last < self.interval:
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                continue
            self._last[reason] = now
            out.append((refusal, self._suppressed.pop(reason, 0)))
        return out


def describe(refusal: Refusal, node: str, suppressed: int) -> str:
    """One log line (no traceback, no payload bytes)."""
    more = f" ({suppressed} more refused for this reason since the last line)" if suppressed else ""
    return (
        f"node={node} refused {refusal.kind} from {quote(refusal.frm, 64)} term={refusal.term}: "
        f"{refusal.reason.value}: {refusal.detail}{more}"
    )

"""The executor's lease: pure bookkeeping on an injected monotonic clock (SPEC §6 promise 9).

The leader grants a lease by acknowledging a heartbeat: `HeartbeatAck(seq, lease_ms)`. The lease is
measured from when the executor *sent* heartbeat `seq`, not from when the ack arrived, so network
delay on either leg only shortens the lease the executor believes it holds, never lengthens it. The
leader measures its own view from when it *received* `seq`, which is later; the executor's deadline
therefore always falls before the leader's, which is what lets the executor kill its tasks before
the leader may hand their jobs to someone else.

Nothing here sleeps, awaits or reads a clock other than the one it was given.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]  # monotonic seconds

# Heartbeats sent but not yet acknowledged that we remember. An ack for an older seq than this
# window is simply ignored (it could only grant a deadline earlier than a newer ack would).
MAX_OUTSTANDING_HEARTBEATS = 64


class Lease:
    """When the lease granted by acknowledged heartbeats runs out.

    `cap_ms` is the executor's own limit: the leader's grant wins only when it is shorter.
    """

    def __init__(self, *, cap_ms: int, clock: Clock) -> None:
        if cap_ms <= 0:
            raise ValueError(f"lease cap_ms must be positive, got {cap_ms}")
        self._cap_s = cap_ms / 1000.0
        self._clock = clock
        self._sent: dict[int, float] = {}  # seq -> monotonic send time, in seq order
        # Invariant: the deadline only moves forward (an ack never shortens a lease already held).
        self._deadline: float | None = None

    @property
    def deadline(self) -> float | None:
        """The monotonic time the lease ends, or None when it was never granted."""
        return self._deadline

    def heartbeat_sent(self, seq: int) -> None:
        """Record that heartbeat `seq` leaves now; seqs must increase."""
        if self._sent and seq <= next(reversed(self._sent)):
            raise AssertionError(f"heartbeat seq must increase: {seq} after {next(reversed(self._sent))}")
        self._sent[seq] = self._clock()
        while len(self._sent) > MAX_OUTSTANDING_HEARTBEATS:
            del self._sent[next(iter(self._sent))]

    def maybe_extend(self, seq: int, lease_ms: int) -> bool:
        """Apply an ack of heartbeat `seq`; says whether the deadline moved forward."""
        sent = self._sent.get(seq)
        if sent is None:
            return False  # unknown, forgotten, or already superseded by a newer ack
        for old in [s for s in self._sent if s <= seq]:
            del self._sent[old]  # acks arrive in order on one stream; older ones can only be earlier
        deadline = sent + min(lease_ms / 1000.0, self._cap_s)
        if self._deadline is not None and deadline <= self._deadline:
            return False
        self._deadline = deadline
        return True

    def remaining(self) -> float:
        """Seconds of lease left (0.0 when lapsed or never held)."""
        if self._deadline is None:
            return 0.0
        return max(0.0, self._deadline - self._clock())

    def held(self) -> bool:
        return self.remaining() > 0.0

"""The leader's view of each follower: what matches, what to send next, how much is in flight."""

from __future__ import annotations

from collections import deque
from enum import Enum

# Heartbeat rounds a follower may leave unanswered (no message from it at all) before we probe it
# again. A live follower answers every heartbeat; one whose log lost entries it acknowledged (a cut
# WAL, a wiped disk) refuses them, as their commit is beyond its log, and a probe sent while it was
# down is lost: without this, nothing would ever move its progress again.
PROBE_RETRY_ROUNDS = 3


class ProgressState(Enum):
    PROBE = 0  # one append at a time until we learn where the logs match
    REPLICATE = 1  # optimistic pipelining within the in-flight window
    SNAPSHOT = 2  # a snapshot is being streamed; nothing else is sent


class Progress:
    def __init__(self, next_index: int, max_inflight: int) -> None:
        # Invariant: match < next
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False  # PROBE: an append is outstanding, wait for its answer
        self.pending_snapshot = 0  # SNAPSHOT: the index of the snapshot being sent
        self.recent_active = False  # heard from since the last check-quorum round
        self.read_acked = 0  # highest ReadIndex heartbeat round this follower confirmed
        self.max_inflight = max_inflight
        self.inflight: deque[int] = deque()  # last index of each append in flight, ascending
        self.doubted = 0  # PROBE: an index it acknowledged, then rejected once (stale, or lost?)
        self.unanswered = 0  # heartbeat rounds since we last heard from it

    def __repr__(self) -> str:
        return f"Progress(match={self.match}, next={self.next}, {self.state.name})"

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.SNAPSHOT:
            return True
        return len(self.inflight) >= self.max_inflight

    def become_probe(self) -> None:
        # After a snapshot, resume right after it; otherwise right after what we know matches.
        self.next = max(self.match + 1, self.pending_snapshot + 1)
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = index

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflight.clear()

    def sent(self, last_index: int, entry_count: int) -> None:
        """Record an append carrying entries up to `last_index`."""
        if self.state is ProgressState.REPLICATE:
            if entry_count:
                self.next = last_index + 1
                self.inflight.append(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def heartbeat_round(self) -> bool:
        """A heartbeat round went out. True when the follower has answered nothing for
        PROBE_RETRY_ROUNDS of them: it is probed again, from what it acknowledged (a stale answer
        on the way costs one probe)."""
        self.unanswered += 1
        if self.unanswered < PROBE_RETRY_ROUNDS or self.state is ProgressState.SNAPSHOT:
            return False
        self.unanswered = 0
        if self.state is ProgressState.REPLICATE:
            self.become_probe()
        self.probe_sent = False
        return True

    def maybe_update(self, index: int) -> bool:
        """A follower acknowledged everything up to `index`; False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.doubted = 0
        self.next = max(self.next, index + 1)
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        return updated

    def maybe_decrease(self, rejected: int, probe_hint: int) -> bool:
        """A follower rejected the append after `rejected`; False if the rejection is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected < self.match:
                return False  # an answer to an append sent before it acknowledged `match`
            if rejected == self.match:
                # Usually an answer to an older append, arriving late. But a follower whose log lost
                # its tail rejects every append after what it acknowledged, and its heartbeats are
                # refused: probe at the match index to tell the two apart (the first doubt, below).
                self.become_probe()
                self.doubted = self.match
                return True
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        if rejected <= self.match:
            # It rejects an index it acknowledged. Once may be an old answer arriving late; twice in
            # a row, to two probes there, means its log lost its tail (a WAL cut or damaged after a
            # crash): count it for nothing until it acknowledges again and probe where it ends.
            # Without this we would probe at the same index forever.
            if self.doubted != rejected:
                self.doubted = rejected
            else:
                self.match, self.doubted = 0, 0
        self.next = max(min(rejected, probe_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

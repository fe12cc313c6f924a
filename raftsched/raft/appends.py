"""Merging consecutive append messages to one follower into one (pure, no I/O).

The transport writes a peer's queued appends back to back; when the core made several while the
stream was busy (one per ready), sending them as one message costs the wire one write, and the
follower one step, one persist and one answer, instead of one each.
"""

from __future__ import annotations

from raftsched.raft.messages import AppendRequest
from raftsched.raft.storage import entry_size


def merge_appends(first: AppendRequest, second: AppendRequest, max_bytes: int) -> AppendRequest | None:
    """One append with the effect of `first` then `second`, or None when they do not merge.

    They merge when the same leader sent both in one term to one follower, `second` starts right
    after `first`'s last entry (same index and term), and all their entries fit `max_bytes` (the
    core's per-message limit: a follower never gets a larger append than the core would send).
    The commit index is the larger of the two (the second's, as a leader's commit only grows); a
    follower applies it only up to the entries it now holds.
    """
    if (first.frm, first.to, first.term) != (second.frm, second.to, second.term):
        return None
    last_index = first.prev_index + len(first.entries)
    last_term = first.entries[-1].term if first.entries else first.prev_term
    if (second.prev_index, second.prev_term) != (last_index, last_term):
        return None
    if not second.entries:
        return None  # a probe or a commit update: nothing to gain, and it may stand for a heartbeat
    if sum(entry_size(e) for e in (*first.entries, *second.entries)) > max_bytes:
        return None
    return AppendRequest(first.frm, first.to, first.term, first.prev_index, first.prev_term,
                         first.entries + second.entries, max(first.commit, second.commit))

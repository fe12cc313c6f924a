"""Planted bugs: subclasses of the real core, each breaking one rule the simulation must catch.

Each override copies the real method and removes or changes exactly one thing (marked `# BUG`).
They exist for `test_teeth.py` and for `python -m tests.raft.sim.replay --bug NAME`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raftsched.raft.core import RaftConfig, RaftCore
from raftsched.raft.messages import AppendRequest, AppendResponse, Heartbeat, HeartbeatResponse, Message
from raftsched.raft.storage import MemoryStorage
from raftsched.raft.validate import Problem


class VoteIgnoresLog(RaftCore):
    """Grants votes without the §5.4.1 check that the candidate's log is at least as up to date."""

    def __init__(self, config: RaftConfig, storage: MemoryStorage, rng: random.Random, applied: int = 0) -> None:
        super().__init__(config, storage, rng, applied)
        self.log.is_up_to_date = lambda last_index, last_term: True  # type: ignore[method-assign]  # BUG


class CommitsOldTerm(RaftCore):
    """Counts replicas of an entry from an earlier term towards commit (Figure 8 of the paper)."""

    def _maybe_commit(self) -> bool:
        from raftsched.raft import quorum

        index = quorum.committed_index(self.conf.voters, self._match_of)
        if index <= self.log.committed:  # BUG: no `or self.log.term_or_zero(index) != self.term`
            return False
        self.log.commit_to(index)
        self._bcast_due = True
        if self._reads_before_commit:
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for ctx in waiting:
                self._add_read(ctx)
        return True


class KeepsConflicts(RaftCore):
    """A follower appends only what lies beyond its log, keeping entries that conflict (§5.3)."""

    def _handle_append(self, msg: AppendRequest) -> None:
        if msg.prev_index < self.log.committed:
            self._send(AppendResponse(self.id, msg.frm, self.term, True, self.log.committed))
            return
        if not self.log.match_term(msg.prev_index, msg.prev_term):
            self._reject_append(msg)
            return
        new = [e for e in msg.entries if e.index > self.log.last_index()]  # BUG: no truncation
        self.log.append(new)
        last_new = msg.prev_index + len(msg.entries)
        self.log.commit_to(min(msg.commit, last_new))
        self._send(AppendResponse(self.id, msg.frm, self.term, True, last_new))


class ReadsBeforeNoop(RaftCore):
    """Serves ReadIndex at once, before this term's no-op commits (§6.4 step 1)."""

    def read_index(self, ctx: int) -> None:
        super().read_index(ctx)
        if self._reads_before_commit:  # BUG: release instead of waiting for the no-op
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for pending in waiting:
                self._add_read(pending)


class AnswersBeforePersist(RaftCore):
    """Sends votes and append acknowledgements before what they promise is durable (thesis §3.8):
    a crash then forgets a vote or an entry the leader counted towards commit."""

    def _send(self, msg: Message) -> None:
        self._msgs.append(msg)  # BUG: votes and append responses belong in _msgs_after_persist


class UncappedHeartbeatCommit(RaftCore):
    """Heartbeats carry the leader's commit index uncapped, so a follower with a divergent tail
    commits entries the leader never replicated to it."""

    def _bcast_heartbeat(self) -> None:
        if self._read_round_due:
            self._read_round += 1
            self._read_round_due = False
        for peer in self._peers():
            commit = self.log.committed  # BUG: not min(progress.match, committed)
            self._send(Heartbeat(self.id, peer, self.term, commit, self._read_round, self.log.term_or_zero(commit)))


class TrustsLeaderCommit(RaftCore):
    """A follower takes a heartbeat's commit index capped at its last entry, as raftsched did before
    issue 14: a commit past its log, or at an entry of another term, moves its commit index."""

    def _heartbeat_refusal(self, msg: Heartbeat) -> Problem | None:
        return None  # BUG: no check that our log backs the commit

    def _handle_heartbeat(self, msg: Heartbeat) -> None:
        self.log.commit_to(min(msg.commit, self.log.last_index()))  # BUG: trusts the leader's claim
        self._send(HeartbeatResponse(self.id, msg.frm, self.term, msg.read_seq))


class VotesForAnyone(RaftCore):
    """Hears vote requests from any sender, as raftsched did before issue 14: a stranger's
    RequestVote with a huge term and leadership_transfer deposes the leader and moves the term."""

    def _is_voter(self, node: str) -> bool:
        return True  # BUG: not `node in self.conf.voters or ...`


class AcceptsGaps(RaftCore):
    """Checks appends only against its state, not their own shape (ranges, contiguous entries,
    plausible terms): the transport's checks are the only ones left."""

    def _problem(self, msg: Message) -> Problem | None:
        if isinstance(msg, AppendRequest):
            return self._refusal_for(msg)  # BUG: no check_message(msg) first
        return super()._problem(msg)


CoreFactory = Callable[[RaftConfig, MemoryStorage, random.Random, int], RaftCore]

BUGS: dict[str, CoreFactory] = {
    "vote-ignores-log": VoteIgnoresLog,
    "commits-old-term": CommitsOldTerm,
    "keeps-conflicts": KeepsConflicts,
    "reads-before-noop": ReadsBeforeNoop,
    "answers-before-persist": AnswersBeforePersist,
    "uncapped-heartbeat-commit": UncappedHeartbeatCommit,
    # issue 14: only the hostile-peer fault sends what these accept
    "trusts-leader-commit": TrustsLeaderCommit,
    "votes-for-anyone": VotesForAnyone,
    "accepts-gaps": AcceptsGaps,
}

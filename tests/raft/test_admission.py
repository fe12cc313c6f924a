"""Issue 14 in the core, scenario by scenario: what a node refuses, that a refusal changes nothing,
that correct peers are never refused where Raft needs them, and that no term or index arithmetic
can leave the range the wire, the disk and the metrics hold exactly.
"""

from __future__ import annotations

import random

import pytest

from raftsched.raft.core import RaftConfig, RaftCore
from raftsched.raft.errors import ProposalDroppedError, StateOutOfRangeError
from raftsched.raft.messages import (
    AppendRequest,
    ConfigState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    Role,
    SnapshotMeta,
    TimeoutNow,
    VoteRequest,
)
from raftsched.raft.refusals import Reason, Refusal, RefusalLog, describe
from raftsched.raft.storage import MemoryStorage
from raftsched.raft.validate import MAX_INDEX, MAX_TERM, MAX_TERM_JUMP, check_message
from raftsched.storage import codec

from .sim import checkers as chk
from .sim.cluster import Cluster, SimConfig

VOTERS = frozenset({"n1", "n2", "n3"})


def core(storage: MemoryStorage | None = None, node: str = "n1") -> RaftCore:
    return RaftCore(RaftConfig(node), storage or MemoryStorage.bootstrap(VOTERS), random.Random(1))


def refused(c: RaftCore, msg: object) -> Reason | None:
    """Step `msg`; the reason it was refused for (checking it changed nothing), or None."""
    before, count = chk.observable(c), c.refusals.total
    c.step(msg)  # type: ignore[arg-type]
    if c.refusals.total == count:
        return None
    assert chk.observable(c) == before
    return c.refusals.take_unlogged()[-1].reason


def follower_with_log(terms: list[int], term: int, leader: str = "n2", commit: int = 0) -> RaftCore:
    storage = MemoryStorage.bootstrap(VOTERS)
    storage.append([Entry(t, i) for i, t in enumerate(terms, 1)])
    storage.set_hard_state(HardState(term=term, commit=commit))
    c = core(storage)
    c.step(Heartbeat(leader, "n1", term, 0))  # follow the leader of `term`
    assert c.leader == leader and c.refusals.total == 0
    return c


# --- stateless: ranges and log shapes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (VoteRequest("n2", "n1", MAX_TERM + 1, 0, 0), Reason.TERM_OUT_OF_RANGE),
        (VoteRequest("n2", "n1", 2**64 - 1, 0, 0, transfer=True), Reason.TERM_OUT_OF_RANGE),
        (VoteRequest("n2", "n1", 3, MAX_INDEX + 1, 2), Reason.INDEX_OUT_OF_RANGE),
        (VoteRequest("n2", "n1", 3, 7, 4), Reason.BAD_LOG_TERMS),  # last log term beyond its term
        (VoteRequest("n2", "n1", 3, 0, 1), Reason.BAD_LOG_TERMS),  # index 0 has term 0
        (AppendRequest("n2", "n1", 2, 4, 2, (Entry(2, 6),), 0), Reason.ENTRIES_NOT_CONTIGUOUS),
        (AppendRequest("n2", "n1", 2, 4, 2, (Entry(2, 5), Entry(2, 7)), 0), Reason.ENTRIES_NOT_CONTIGUOUS),
        (AppendRequest("n2", "n1", 2, 4, 2, (Entry(1, 5),), 0), Reason.BAD_LOG_TERMS),  # below prev term
        (AppendRequest("n2", "n1", 2, 4, 1, (Entry(2, 5), Entry(1, 6)), 0), Reason.BAD_LOG_TERMS),
        (AppendRequest("n2", "n1", 2, 4, 1, (Entry(3, 5),), 0), Reason.BAD_LOG_TERMS),  # beyond its term
        (AppendRequest("n2", "n1", 2, 4, 3, (), 0), Reason.BAD_LOG_TERMS),
        (AppendRequest("n2", "n1", 2, 4, 2, (), MAX_INDEX + 1), Reason.INDEX_OUT_OF_RANGE),
        (AppendRequest("n2", "n1", 2, MAX_INDEX, 2, (Entry(2, MAX_INDEX + 1),), 0), Reason.INDEX_OUT_OF_RANGE),
        (Heartbeat("n2", "n1", 2, 2**64 - 1, commit_term=2), Reason.INDEX_OUT_OF_RANGE),
        (Heartbeat("n2", "n1", 2, 5, commit_term=3), Reason.BAD_LOG_TERMS),
        (Heartbeat("", "n1", 2, 0), Reason.NOT_A_MEMBER),  # "" would match "no leader"
        (TimeoutNow("n2", "x" * 200, 2), Reason.WRONG_RECIPIENT),
    ],
)
def test_check_message_refuses_impossible_messages(msg: object, reason: Reason) -> None:
    problem = check_message(msg)  # type: ignore[arg-type]
    assert problem is not None and problem[0] is reason, problem
    assert refused(core(), msg) is reason  # the core refuses them too


def test_check_message_passes_what_correct_nodes_send() -> None:
    for msg in (
        VoteRequest("n2", "n1", 1, 0, 0, pre_vote=True),
        VoteRequest("n2", "n1", MAX_TERM, MAX_INDEX, MAX_TERM),
        AppendRequest("n2", "n1", 3, 0, 0, (Entry(1, 1), Entry(3, 2)), 2),
        AppendRequest("n2", "n1", MAX_TERM, MAX_INDEX - 1, 5, (Entry(MAX_TERM, MAX_INDEX),), MAX_INDEX),
        Heartbeat("n2", "n1", 4, 0),
        Heartbeat("n2", "n1", 4, 9, read_seq=3, commit_term=2),
    ):
        assert check_message(msg) is None, msg


# --- stateful: who may send what -------------------------------------------------------------------


def test_a_strangers_huge_term_transfer_vote_deposes_no_leader() -> None:
    """The issue's RequestVote finding, in the core: a non-voter's transfer vote is refused."""
    c = follower_with_log([1, 1], term=1)
    assert refused(c, VoteRequest("mallory", "n1", 1 + MAX_TERM_JUMP, 9, 1 + MAX_TERM_JUMP, transfer=True)) is (
        Reason.NOT_A_VOTER
    )
    assert refused(c, VoteRequest("n3", "n1", 2 + MAX_TERM_JUMP, 9, 2, transfer=True)) is Reason.TERM_JUMP
    assert refused(c, VoteRequest("n3", "n1", 2, 9, 2, transfer=True)) is None  # a member's transfer vote
    assert c.term == 2 and c.vote == "n3"


def test_a_candidate_unknown_to_a_lagging_voter_still_gets_its_vote() -> None:
    """Membership simulation seed 31: the candidate was promoted in entries this voter lacks. With
    no live leader and a candidate log ahead of ours, the vote is heard (else no leader, ever)."""
    c = core()  # knows n1..n3 only
    assert refused(c, VoteRequest("n4", "n1", 3, 5, 2)) is None
    assert c.vote == "n4"
    behind = core()
    assert refused(behind, VoteRequest("n4", "n1", 3, 0, 0)) is Reason.NOT_A_VOTER  # its log is not ahead


def test_a_leader_unknown_to_a_lagging_follower_is_followed_once_and_only_then() -> None:
    """Its term is beyond our last entry's and we follow no live leader: our log may lack the entry
    that added it. A stranger in a term our log covers, or while we have a leader, is refused."""
    c = follower_with_log([1, 2], term=2)
    assert refused(c, Heartbeat("n4", "n1", 3, 0)) is Reason.NOT_A_MEMBER  # n2 leads and is live
    lagging = core(MemoryStorage.bootstrap(VOTERS))
    assert refused(lagging, AppendRequest("n4", "n1", 0, 0, 0, (), 0)) is Reason.NOT_A_MEMBER
    assert refused(lagging, AppendRequest("n4", "n1", 5, 0, 0, (Entry(5, 1),), 0)) is None
    assert lagging.leader == "n4" and lagging.log.last_index() == 1
    assert refused(lagging, Heartbeat("n4", "n1", 5, 1, commit_term=5)) is None  # now our leader
    assert lagging.commit == 1


def test_timeout_now_only_from_the_leader_of_our_term() -> None:
    c = follower_with_log([1], term=1)
    assert refused(c, TimeoutNow("n3", "n1", 1)) is Reason.DISRUPTS_LEADER
    assert refused(c, TimeoutNow("n2", "n1", 2)) is Reason.DISRUPTS_LEADER  # a term it does not lead
    assert refused(c, TimeoutNow("n2", "n1", 0)) is None  # stale: dropped as before, not counted
    assert refused(c, TimeoutNow("n2", "n1", 1)) is None
    assert c.role is Role.CANDIDATE and c.term == 2


# --- commits a follower's log cannot back ---------------------------------------------------------


def test_heartbeat_commit_past_the_log_is_refused_loudly() -> None:
    """The issue's finding: a heartbeat with commit 2**64-1 (or just past the log) moved the commit
    index past the last entry; applying then failed for good."""
    c = follower_with_log([1, 1, 1], term=1, commit=1)
    assert refused(c, Heartbeat("n2", "n1", 1, 4, commit_term=1)) is Reason.COMMIT_BEYOND_LOG
    assert Reason.COMMIT_BEYOND_LOG.loud
    assert refused(c, Heartbeat("n2", "n1", 1, 2**64 - 1, commit_term=1)) is Reason.INDEX_OUT_OF_RANGE
    assert c.commit == 1


def test_heartbeat_commit_at_an_entry_of_another_term_is_refused() -> None:
    """Our entries 2..3 are from term 1; the leader of term 2 has term-2 entries there. Committing
    its commit index would commit our divergent tail: log matching says only a same-term entry
    at the commit index proves the prefix is the leader's."""
    c = follower_with_log([1, 1, 1], term=2, commit=1)
    assert refused(c, Heartbeat("n2", "n1", 2, 3, commit_term=2)) is Reason.COMMIT_NOT_MATCHED
    assert c.commit == 1
    assert refused(c, Heartbeat("n2", "n1", 2, 3, commit_term=1)) is None  # the same term: ours matches
    assert c.commit == 3
    assert refused(c, Heartbeat("n2", "n1", 2, 2, commit_term=2)) is None  # below our commit: nothing to check


def test_append_commit_is_capped_at_the_last_new_entry_not_refused() -> None:
    c = follower_with_log([1], term=1)
    assert refused(c, AppendRequest("n2", "n1", 1, 1, 1, (Entry(1, 2),), 50)) is None
    assert c.commit == 2  # min(leader commit, index of last new entry), Figure 2


def test_a_leader_refuses_acknowledgements_of_what_it_never_sent() -> None:
    c = Cluster(3, seed=3, config=SimConfig())
    c.core("n1").campaign()
    c.stabilize()
    leader = c.core("n1")
    last = leader.log.last_index()
    from raftsched.raft.messages import AppendResponse, HeartbeatResponse

    assert refused(leader, AppendResponse("n2", "n1", leader.term, True, last + 1)) is Reason.RESPONSE_AHEAD
    assert refused(leader, AppendResponse("n2", "n1", leader.term, False, 0, 1, last + 9)) is Reason.RESPONSE_AHEAD
    assert refused(leader, HeartbeatResponse("n2", "n1", leader.term, 99)) is Reason.RESPONSE_AHEAD
    assert refused(leader, AppendResponse("mallory", "n1", leader.term + 1, False, 0)) is Reason.NOT_A_MEMBER
    assert leader.role is Role.LEADER


# --- limits: nothing overflows ---------------------------------------------------------------------


def test_a_node_at_the_last_term_never_campaigns_past_it() -> None:
    storage = MemoryStorage.bootstrap(VOTERS)
    storage.set_hard_state(HardState(term=MAX_TERM))
    c = core(storage)
    c.campaign()
    for _ in range(100):
        c.tick()
    assert c.term == MAX_TERM and c.role is Role.FOLLOWER and not c._msgs


def test_a_leader_refuses_proposals_past_the_last_index() -> None:
    storage = MemoryStorage(snapshot=SnapshotMeta(MAX_INDEX - 3, 5, ConfigState(frozenset({"n1"}))))
    storage.set_hard_state(HardState(term=5, commit=MAX_INDEX - 3))
    c = RaftCore(RaftConfig("n1"), storage, random.Random(1), MAX_INDEX - 3)
    c.campaign()
    assert c.role is Role.LEADER and c.log.last_index() == MAX_INDEX - 2  # its no-op
    c.propose([b"a"])
    with pytest.raises(ProposalDroppedError, match="pass index"):
        c.propose([b"b", b"c"])
    c.propose([b"b"])
    assert c.log.last_index() == MAX_INDEX


def test_a_stored_term_beyond_the_range_is_a_clear_error() -> None:
    """What the issue's RequestVote left on every node's disk (term 2**64-1)."""
    storage = MemoryStorage.bootstrap(VOTERS)
    storage.set_hard_state(HardState(term=2**64 - 1))
    with pytest.raises(StateOutOfRangeError, match="backup"):
        core(storage)


def test_the_storage_codec_holds_the_largest_terms_and_indexes() -> None:
    entry = Entry(MAX_TERM, MAX_INDEX, EntryType.CONFIG, b"x")
    key = codec.index_key(entry.index)
    assert codec.decode_entry("raft_log", key, codec.encode_entry(entry)) == entry
    hard = HardState(MAX_TERM, "n1", MAX_INDEX)
    assert codec.decode_hard_state("raft_meta", b"hs", codec.encode_hard_state(b"hs", hard)) == hard
    assert MAX_INDEX + 1 < codec.MAX_INDEX  # the exclusive end key stays beyond every index


# --- the refusal log -------------------------------------------------------------------------------


def test_refusals_are_logged_once_per_reason_per_interval() -> None:
    limiter = RefusalLog(interval=10.0)
    a = Refusal(Reason.TERM_JUMP, "VoteRequest", "mallory", 5, "jump")
    b = Refusal(Reason.NOT_A_MEMBER, "Heartbeat", "x" * 500, 5, "who")
    assert [s for _, s in limiter.lines([a, a, b, a], now=0.0)] == [0, 0]
    assert limiter.lines([a], now=5.0) == []
    (line,) = limiter.lines([a], now=10.5)
    assert line == (a, 3)  # three suppressed since the last line
    text = describe(b, "n1", 0)
    assert "not-a-member" in text and len(text) < 200  # a long sender id is cut

"""The hostile peer: a fault that injects messages every correct node must refuse (issue 14).

It speaks in a non-member's name ("mallory") or forges a member's, and sends what a receiver can
refuse whoever the sender claims to be: terms and indexes beyond MAX_TERM / MAX_INDEX, terms that
jump too far, entries with gaps or impossible terms, heartbeats whose commit the receiver's log
cannot back, huge terms with leadership_transfer, TimeoutNow from a node that does not lead,
misaddressed messages, messages in the receiver's own name, responses acknowledging more than
the receiver sent. (Forged messages that are indistinguishable from a correct member's cannot be
refused without authentication; that is what TLS node certificates are for, not this fault.)

Each message is crafted against the target's state at the moment it is stepped into the target's
core (the peer sits on the target's wire), and `checkers.check_refused` asserts that the core
refused it and changed nothing: no term, vote, commit, log, role, timer or ready. So a hostile
run is the honest run of the same seed plus refusals: the fault draws from its own rng and never
touches the network's, the workload's or any core's.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from raftsched.raft.core import RaftCore
from raftsched.raft.messages import (
    NO_NODE,
    AppendRequest,
    AppendResponse,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    Message,
    Role,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raftsched.raft.validate import MAX_INDEX, MAX_TERM, MAX_TERM_JUMP

from . import checkers as chk

STRANGER = "mallory"  # in no configuration, ever
U64 = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Hostility:
    """How many hostile messages arrive per tick (0: the fault is off), and how many of them are
    sent in a member's name rather than a stranger's."""

    rate: float = 0.0
    forged: float = 0.5

    @classmethod
    def draw(cls, rng: random.Random) -> Hostility:
        if rng.random() < 0.5:
            return cls()
        return cls(rate=rng.uniform(0.05, 0.8), forged=rng.random())


NO_HOSTILITY = Hostility()


class HostilePeer:
    """Steps crafted messages into live cores and checks each one is refused without effect."""

    def __init__(self, rng: random.Random, hostility: Hostility) -> None:
        self.rng = rng
        self.hostility = hostility
        self.sent: Counter[str] = Counter()  # attack name -> messages injected
        self.refused: Counter[str] = Counter()  # refusal reason -> count

    def inject(self, cores: dict[str, RaftCore], members: Sequence[str]) -> None:
        """This tick's share of hostile messages, each into a random live core."""
        if not cores:
            return
        rate = self.hostility.rate
        count = int(rate) + (1 if self.rng.random() < rate - int(rate) else 0)
        for _ in range(count):
            target = self.rng.choice(sorted(cores))
            self.attack(target, cores[target], members)

    def attack(self, target: str, core: RaftCore, members: Sequence[str]) -> Message:
        name, craft = self.rng.choice(ATTACKS)
        msg = craft(_Ctx(self.rng, target, core, members, self._sender(target, core, members)))
        before = chk.observable(core)
        refused_before = core.refusals.total
        core.step(msg)
        refused = core.refusals.total == refused_before + 1
        chk.check_refused(target, name, msg, refused, before, chk.observable(core))
        reasons = core.refusals.take_unlogged()
        self.sent[name] += 1
        self.refused[reasons[-1].reason.value if reasons else "?"] += 1
        return msg

    def _sender(self, target: str, core: RaftCore, members: Sequence[str]) -> str:
        others = [m for m in members if m != target]
        if not others or self.rng.random() >= self.hostility.forged:
            return STRANGER
        if core.leader not in (NO_NODE, target) and self.rng.random() < 0.5:
            return core.leader  # impersonate our leader: the most dangerous name to forge
        return self.rng.choice(others)


@dataclass(frozen=True, slots=True)
class _Ctx:
    rng: random.Random
    target: str
    core: RaftCore
    members: Sequence[str]
    frm: str  # a stranger, or a forged member

    def huge_term(self) -> int:
        return self.rng.choice((MAX_TERM + 1, U64, self.rng.randint(MAX_TERM + 1, U64)))

    def huge_index(self) -> int:
        return self.rng.choice((MAX_INDEX + 1, U64, self.rng.randint(MAX_INDEX + 1, U64)))

    def jumped_term(self) -> int:
        return self.rng.randint(self.core.term + MAX_TERM_JUMP + 1, MAX_TERM)

    def last(self) -> tuple[int, int]:
        return self.core.log.last_index(), self.core.log.last_term()


# --- the attacks: each returns a message the target must refuse ----------------------------------


def term_out_of_range(c: _Ctx) -> Message:
    term = c.huge_term()
    index, last_term = c.last()
    return c.rng.choice(
        (
            VoteRequest(c.frm, c.target, term, index, last_term, transfer=c.rng.random() < 0.5),
            AppendRequest(c.frm, c.target, term, index, last_term, (Entry(term, index + 1),), index + 1),
            Heartbeat(c.frm, c.target, term, 0),
            TimeoutNow(c.frm, c.target, term),
            VoteResponse(c.frm, c.target, term, True),
            AppendResponse(c.frm, c.target, term, True, index),
        )
    )


def index_out_of_range(c: _Ctx) -> Message:
    huge, term = c.huge_index(), c.core.term
    return c.rng.choice(
        (
            VoteRequest(c.frm, c.target, term + 1, huge, term, pre_vote=True),
            AppendRequest(c.frm, c.target, term, huge, term, (), 0),
            AppendRequest(c.frm, c.target, term, 0, 0, (), huge),
            Heartbeat(c.frm, c.target, term, huge, commit_term=term),
            Heartbeat(c.frm, c.target, term, 0, read_seq=huge),
            AppendResponse(c.frm, c.target, term, True, huge),
            AppendResponse(c.frm, c.target, term, False, 0, reject_index=1, hint_index=huge),
            HeartbeatResponse(c.frm, c.target, term, read_seq=huge),
            SnapshotResponse(c.frm, c.target, term, True, huge),
        )
    )


def gapped_entries(c: _Ctx) -> Message:
    """The finding of issue 14: entries at gapped indexes, in the current term."""
    index, last_term = c.last()
    term = max(c.core.term, 1)
    skip = c.rng.choice((0, 2, 1000))
    entries = (Entry(term, index + 1 + skip), Entry(term, index + 3 + skip))
    return AppendRequest(c.frm, c.target, term, index, last_term, entries, index + 3)


def impossible_terms(c: _Ctx) -> Message:
    index, last_term = c.last()
    term = max(c.core.term, 1)
    choice = c.rng.randrange(4)
    if choice == 0:  # entry terms decrease
        entries = (Entry(term, index + 1), Entry(max(term - 1, 0), index + 2))
        return AppendRequest(c.frm, c.target, term, index, last_term, entries, 0)
    if choice == 1:  # an entry from a later term than the message's
        return AppendRequest(c.frm, c.target, term, index, last_term, (Entry(term + 1, index + 1),), 0)
    if choice == 2:  # index 0 holds term 0 only
        return AppendRequest(c.frm, c.target, term, 0, 1, (Entry(term, 1),), 0)
    return VoteRequest(c.frm, c.target, term, index + 1, term + 1)  # last log term beyond its term


def stranger(c: _Ctx) -> Message:
    """A non-member: votes (with huge terms and leadership_transfer too), leader messages in
    terms our log already covers, and responses."""
    index, last_term = c.last()
    term = c.core.term
    huge = c.rng.randint(term + 1, term + MAX_TERM_JUMP)
    return c.rng.choice(
        (
            VoteRequest(STRANGER, c.target, huge, 0, 0, transfer=True),
            VoteRequest(STRANGER, c.target, term + 1, 0, 0, pre_vote=True),
            Heartbeat(STRANGER, c.target, last_term, 0),
            AppendRequest(STRANGER, c.target, last_term, index, last_term, (), index),
            VoteResponse(STRANGER, c.target, huge, True),
            AppendResponse(STRANGER, c.target, term, True, 0),
            HeartbeatResponse(STRANGER, c.target, huge),
        )
    )


def oversized_commit(c: _Ctx) -> Message:
    """The finding of issue 14: a heartbeat in our leader's name whose commit our log cannot back."""
    core, term = c.core, c.core.term
    last, committed = core.log.last_index(), core.log.committed
    frm = c.frm if c.frm != STRANGER else c.rng.choice([m for m in c.members if m != c.target] or [STRANGER])
    if last > committed and term > 1 and c.rng.random() < 0.5:
        commit = c.rng.randint(committed + 1, last)
        ours = core.log.term_or_zero(commit)
        other = c.rng.choice([t for t in range(1, term + 1) if t != ours])
        return Heartbeat(frm, c.target, term, commit, commit_term=other)
    commit = c.rng.choice((last + 1, last + 1000, MAX_INDEX))
    return Heartbeat(frm, c.target, max(term, 1), commit, commit_term=max(term, 1))


def term_jump(c: _Ctx) -> Message:
    term = c.jumped_term()
    index, last_term = c.last()
    return c.rng.choice(
        (
            VoteRequest(c.frm, c.target, term, index, last_term, transfer=True),
            VoteRequest(c.frm, c.target, term, index + 5, term),
            AppendRequest(c.frm, c.target, term, index, last_term, (), 0),
            Heartbeat(c.frm, c.target, term, 0),
            AppendResponse(c.frm, c.target, term, False, 0),
        )
    )


def disrupt_leader(c: _Ctx) -> Message:
    """TimeoutNow (campaign now, skipping every voter's lease) from a node that does not lead our
    term. (Transfer votes from strangers are `stranger`'s.)"""
    core, term = c.core, c.core.term
    leader = core._term_leader
    if leader != NO_NODE and c.frm not in (leader, STRANGER) and c.rng.random() < 0.5:
        return TimeoutNow(c.frm, c.target, term)
    return TimeoutNow(c.frm, c.target, term + 1)


def misaddressed(c: _Ctx) -> Message:
    index, last_term = c.last()
    term = c.core.term
    other = c.rng.choice([m for m in c.members if m != c.target] or ["nobody"])
    return c.rng.choice(
        (
            VoteRequest(c.frm, other, term + 1, index, last_term, transfer=True),  # to another node
            Heartbeat(c.target, c.target, term, 0),  # in the target's own name
            AppendRequest(c.target, c.target, c.rng.choice((term, term + 1)), index, last_term, (), index),
        )
    )


def response_ahead(c: _Ctx) -> Message:
    """To a leader: acknowledgements of entries or read rounds it never sent."""
    core, term = c.core, c.core.term
    last = core.log.last_index()
    if core.role is not Role.LEADER:
        return index_out_of_range(c)
    frm = c.rng.choice([m for m in core.progress if m != c.target] or [STRANGER])
    return c.rng.choice(
        (
            AppendResponse(frm, c.target, term, True, last + c.rng.randint(1, 1000)),
            AppendResponse(frm, c.target, term, False, 0, reject_index=last + 1, hint_index=last + 1),
            SnapshotResponse(frm, c.target, term, True, last + 1),
            HeartbeatResponse(frm, c.target, term, read_seq=core._read_round + c.rng.randint(1, 10)),
        )
    )


ATTACKS: tuple[tuple[str, Callable[[_Ctx], Message]], ...] = (
    ("term out of range", term_out_of_range),
    ("index out of range", index_out_of_range),
    ("gapped entries", gapped_entries),
    ("impossible terms", impossible_terms),
    ("stranger", stranger),
    ("oversized commit", oversized_commit),
    ("term jump", term_jump),
    ("disrupt leader", disrupt_leader),
    ("misaddressed", misaddressed),
    ("response ahead", response_ahead),
)

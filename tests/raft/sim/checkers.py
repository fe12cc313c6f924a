"""Safety checkers, separate from the code under test: each raises AssertionError with a message.

The incremental checkers keep what they need in a `History` so that each observation costs little
and the simulation can afford to check after every step; the `check_*_full` variants compare whole
logs or applied sequences and serve the scenario tests and the end of a run.

The properties are Figure 3 of the Raft paper plus two client-visible ones:
  election safety, log matching, leader completeness, state machine safety,
  commit never decreases, acknowledged proposals are never lost, reads are linearizable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from raftsched.raft.core import RaftCore
from raftsched.raft.messages import Entry, Message, ReadState

# (term, type, data): what identifies an entry's content at a given index.
Content = tuple[int, int, bytes]


def content(entry: Entry) -> Content:
    return (entry.term, int(entry.type), entry.data)


@dataclass(frozen=True, slots=True)
class Ack:
    """A proposal whose proposer applied it at the index and term `propose()` returned."""

    payload: bytes
    index: int
    term: int  # the entry's term
    known_term: int  # the proposer's term when it applied: the entry was committed in a term <= this


@dataclass(slots=True)
class History:
    """Everything the checkers have observed over the whole run, across crashes."""

    leaders: dict[int, str] = field(default_factory=dict)  # term -> the one leader of that term
    leader_logs: dict[int, tuple[int, ...]] = field(default_factory=dict)  # term -> terms at election
    # (index, term) -> (content, term of the entry before it): the log matching witness
    entries: dict[tuple[int, int], tuple[Content, int]] = field(default_factory=dict)
    applied: list[Content] = field(default_factory=list)  # applied[i - 1]: the entry applied at i
    committed_in: list[int] = field(default_factory=list)  # an upper bound on the term that committed i
    persisted_commit: dict[str, int] = field(default_factory=dict)
    commit: dict[str, int] = field(default_factory=dict)  # per live incarnation
    acks: list[Ack] = field(default_factory=list)

    def max_applied(self) -> int:
        return len(self.applied)


# --- election safety -----------------------------------------------------------------------


def check_election_safety(history: History, node: str, term: int) -> None:
    """§5.2: at most one leader per term, over all history."""
    previous = history.leaders.setdefault(term, node)
    assert previous == node, f"election safety: both {previous} and {node} were leader in term {term}"


# --- log matching --------------------------------------------------------------------------


def check_log_matching(history: History, node: str, log: Sequence[Entry], first: int, base: tuple[int, int]) -> None:
    """§5.3: entries with the same index and term carry the same content and follow the same
    previous term, hence (by induction) identical prefixes. Checks `log` from index `first` on;
    `base` is the (index, term) the log starts after (its snapshot)."""
    offset, base_term = base
    for pos in range(max(first - offset - 1, 0), len(log)):
        entry = log[pos]
        assert entry.index == offset + 1 + pos, f"{node}: log slot {pos} holds index {entry.index}"
        prev_term = log[pos - 1].term if pos > 0 else base_term
        seen = history.entries.setdefault((entry.index, entry.term), (content(entry), prev_term))
        assert seen[0] == content(entry), (
            f"log matching: {node} holds {content(entry)} at index {entry.index} term {entry.term}, "
            f"another log holds {seen[0]}"
        )
        assert seen[1] == prev_term, (
            f"log matching: entry (index {entry.index}, term {entry.term}) follows term {prev_term} "
            f"on {node} but term {seen[1]} in another log"
        )


def check_logs_match_full(logs: Mapping[str, Sequence[Entry]]) -> None:
    """Log matching over whole logs (no snapshots): pairwise, the prefix up to the last index where
    both hold the same term is identical."""
    names = sorted(logs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            la, lb = logs[a], logs[b]
            common = min(len(la), len(lb))
            last_same = max((k for k in range(common) if la[k].term == lb[k].term), default=-1)
            for k in range(last_same + 1):
                assert la[k] == lb[k], (
                    f"log matching: {a} and {b} agree at index {last_same + 1} (term "
                    f"{la[last_same].term}) but differ at index {k + 1}: {la[k]} vs {lb[k]}"
                )


# --- leader completeness ---------------------------------------------------------------------


def check_leader_completeness(history: History, term: int, leader_terms: tuple[int, ...]) -> None:
    """§5.4: a leader elected in `term` holds every entry committed in an earlier term.
    `leader_terms[i - 1]` is the term of the leader's entry at index i at its election."""
    history.leader_logs[term] = leader_terms
    for index, committed_in in enumerate(history.committed_in, start=1):
        if committed_in < term:
            _expect_in_leader_log(history, term, leader_terms, index)


def check_commit_recorded(history: History, index: int) -> None:
    """A newly committed entry must be in the logs of the leaders elected after its commit."""
    for term, leader_terms in history.leader_logs.items():
        if history.committed_in[index - 1] < term:
            _expect_in_leader_log(history, term, leader_terms, index)


def _expect_in_leader_log(history: History, term: int, leader_terms: tuple[int, ...], index: int) -> None:
    want = history.applied[index - 1][0]
    have = leader_terms[index - 1] if index <= len(leader_terms) else None
    assert have == want, (
        f"leader completeness: entry {index} (term {want}) was committed by term "
        f"{history.committed_in[index - 1]}, but {history.leaders.get(term)}, elected in term {term}, "
        f"has {'no entry' if have is None else f'term {have}'} there"
    )


# --- state machine safety --------------------------------------------------------------------


def check_apply(history: History, node: str, entry: Entry, applied: int, known_term: int) -> None:
    """§5.4.3: a node applies index after index, and every node applies the same entry at an index."""
    assert entry.index == applied + 1, f"{node} applied index {entry.index} right after {applied}"
    if entry.index <= len(history.applied):
        first = history.applied[entry.index - 1]
        assert first == content(entry), (
            f"state machine safety: {node} applied {content(entry)} at index {entry.index}, "
            f"another node applied {first}"
        )
        if known_term < history.committed_in[entry.index - 1]:
            history.committed_in[entry.index - 1] = known_term
            check_commit_recorded(history, entry.index)
        return
    history.applied.append(content(entry))
    history.committed_in.append(known_term)
    check_commit_recorded(history, entry.index)


def check_snapshot_restore(history: History, node: str, index: int, state: Sequence[Content]) -> None:
    """A node that installs a snapshot at `index` adopts exactly the applied prefix up to `index`."""
    assert len(state) == index, f"{node}: snapshot at {index} holds {len(state)} entries"
    known = min(index, len(history.applied))
    assert list(state[:known]) == history.applied[:known], (
        f"state machine safety: {node} restored a snapshot at {index} that differs from what was applied"
    )
    for pos in range(known, index):
        history.applied.append(state[pos])
        history.committed_in.append(1 << 62)  # committed, but by an unknown term: check nothing


def check_applied_prefixes_full(sequences: Mapping[str, Sequence[Content]]) -> None:
    """State machine safety over whole applied sequences: each is a prefix of the longest."""
    longest = max(sequences.values(), key=len, default=())
    for node, seq in sequences.items():
        for i, item in enumerate(seq):
            assert item == longest[i], f"state machine safety: {node} applied {item} at {i + 1}, not {longest[i]}"


# --- commit monotonicity ---------------------------------------------------------------------


def check_commit(history: History, node: str, commit: int) -> None:
    """A node's commit index never decreases while it runs."""
    before = history.commit.get(node, 0)
    assert commit >= before, f"{node}: commit index went back from {before} to {commit}"
    history.commit[node] = commit


def check_persisted_commit(history: History, node: str, commit: int) -> None:
    """The persisted commit index never decreases, across crashes too."""
    before = history.persisted_commit.get(node, 0)
    assert commit >= before, f"{node}: persisted commit went back from {before} to {commit}"
    history.persisted_commit[node] = commit


def check_restart_commit(history: History, node: str, commit: int) -> None:
    """A restarted node starts from (at least) its persisted commit index."""
    persisted = history.persisted_commit.get(node, 0)
    assert commit >= persisted, f"{node}: restarted with commit {commit} below persisted {persisted}"
    history.commit[node] = commit


# --- acknowledged proposals --------------------------------------------------------------------


def check_ack(history: History, ack: Ack) -> None:
    """Record an acknowledged proposal and check it against the leaders elected since its commit."""
    history.acks.append(ack)
    for term, leader_terms in history.leader_logs.items():
        if term > ack.known_term:
            _expect_ack_in(history.leaders[term], term, leader_terms, ack)


def check_acks_in_new_leader(history: History, term: int, leader_terms: tuple[int, ...]) -> None:
    """Every proposal acknowledged before `term` began is in the new leader's log at its index."""
    for ack in history.acks:
        if ack.known_term < term:
            _expect_ack_in(history.leaders[term], term, leader_terms, ack)


def _expect_ack_in(leader: str, term: int, leader_terms: tuple[int, ...], ack: Ack) -> None:
    have = leader_terms[ack.index - 1] if ack.index <= len(leader_terms) else None
    assert have == ack.term, (
        f"acknowledged proposal lost: {ack.payload!r} was acknowledged at index {ack.index} term "
        f"{ack.term}, but {leader}, leader of term {term}, has "
        f"{'no entry' if have is None else f'term {have}'} there"
    )


# --- reads ---------------------------------------------------------------------------------


def check_read(node: str, read: ReadState, floor: int) -> None:
    """Linearizable reads: a read sees every entry applied anywhere before it was requested."""
    assert read.index >= floor, (
        f"stale read: {node} released ReadIndex ctx={read.ctx} at index {read.index}, but index "
        f"{floor} had already been applied (and acknowledged) when the read was requested"
    )


# --- hostile messages (issue 14) -------------------------------------------------------------


def observable(core: RaftCore) -> tuple[object, ...]:
    """Everything a step could change that matters: a refused message must change none of it."""
    log = core.log
    return (
        core.term, core.vote, core.role, core.leader, log.committed, log.applied, log.last_index(),
        len(log.unstable), log.pending_snapshot, core.conf, core.election_elapsed, core.heartbeat_elapsed,
        core.has_ready(), core.transferee, len(core._msgs), len(core._msgs_after_persist),
    )  # fmt: skip


def check_refused(node: str, attack: str, msg: Message, refused: bool, before: tuple[object, ...],
                  after: tuple[object, ...]) -> None:  # fmt: skip
    """A hostile message is refused (counted once) and changes nothing (SPEC promise 15)."""
    assert refused, f"hostile message accepted: {node} did not refuse ({attack}) {msg}"
    assert before == after, (
        f"hostile message refused by {node} ({attack}) but it changed the node: {msg}\n"
        f"before: {before}\nafter:  {after}"
    )

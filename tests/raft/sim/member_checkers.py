"""Membership checkers, separate from the code under test (and from `raftsched.raft.config`).

`ConfigOracle` recomputes, the naive way, which configuration a node's log implies: the genesis
configuration, then every CONFIG entry in index order (a configuration takes effect when appended,
thesis §4.1). Entries the node compacted away are read from the history of committed entries, so a
node's own snapshot metadata is checked rather than trusted. The checks:

  * every leader's configuration is the one its log implies (the latest config entry, or its
    snapshot's), and so is every other node's (but a node started by `--join`, while it replays
    the entries older than its own addition); a node that wins an election is a voter of the
    configuration its log implied then;
  * at most one configuration change is uncommitted in any leader's log;
  * a node campaigns only as a voter of the configuration its log implies, and a vote is granted
    only by a voter of the candidate's configuration (learners never vote, never campaign);
  * a leader whose own removal it has committed steps down within a bound.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from raftsched.raft.messages import ConfigState, Entry, EntryType

from .checkers import Content

CONFIG = int(EntryType.CONFIG)
STEP_DOWN_TICKS = 2  # a leader that committed its own removal is follower this many ticks later

_TermOf = Callable[[int], "int | None"]  # the term a log holds at an index, None if it holds none
_EntriesFrom = Callable[[int], Sequence[Entry]]  # a log's entries from an index on


def naive_apply(conf: ConfigState, data: bytes, where: str) -> ConfigState:
    """The configuration after one encoded change, with no help from the product's config module."""
    raw = json.loads(data)
    kind, node = raw["kind"], raw["node"]
    voters, learners = set(conf.voters), set(conf.learners)
    if kind == "add_learner":
        assert node not in voters | learners, f"{where}: adds {node}, already a member of {_show(conf)}"
        learners.add(node)
    elif kind == "promote":
        assert node in learners, f"{where}: promotes {node}, not a learner in {_show(conf)}"
        learners.discard(node)
        voters.add(node)
    elif kind == "remove":
        assert node in voters | learners, f"{where}: removes {node}, not a member of {_show(conf)}"
        voters.discard(node)
        learners.discard(node)
    else:
        raise AssertionError(f"{where}: unknown change kind {kind!r}")
    assert voters, f"{where}: a change leaves no voter"
    return ConfigState(frozenset(voters), frozenset(learners))


def _show(conf: ConfigState) -> str:
    learners = f" learners={sorted(conf.learners)}" if conf.learners else ""
    return f"voters={sorted(conf.voters)}{learners}"


@dataclass(slots=True)
class _View:
    """What the oracle knows of one node's log: configuration points above its base."""

    base: int
    base_conf: ConfigState
    points: list[tuple[int, ConfigState]] = field(default_factory=list)  # (index, conf), increasing
    scanned: tuple[int, int] = (0, 0)  # (index, term) of the last entry looked at

    def conf_at(self, index: int) -> ConfigState:
        pos = bisect.bisect_right(self.points, index, key=lambda p: p[0])
        return self.points[pos - 1][1] if pos else self.base_conf

    def last(self) -> ConfigState:
        return self.points[-1][1] if self.points else self.base_conf


class ConfigOracle:
    """The configuration each log implies, kept incrementally (each entry is read about once)."""

    def __init__(self, genesis: ConfigState, applied: list[Content]) -> None:
        self.genesis = genesis
        self._applied = applied  # History.applied: the committed entries, by index
        self._committed: list[tuple[int, ConfigState]] = []  # config points of the committed log
        self._committed_scanned = 0
        self._views: dict[str, _View] = {}

    def at_committed(self, index: int) -> ConfigState:
        """The configuration in force at committed index `index`."""
        assert index <= len(self._applied), f"config at {index}: only {len(self._applied)} entries known committed"
        self._scan_committed()
        pos = bisect.bisect_right(self._committed, index, key=lambda p: p[0])
        return self._committed[pos - 1][1] if pos else self.genesis

    def committed_points(self) -> list[tuple[int, ConfigState]]:
        self._scan_committed()
        return list(self._committed)

    def _scan_committed(self) -> None:
        conf = self._committed[-1][1] if self._committed else self.genesis
        for index in range(self._committed_scanned + 1, len(self._applied) + 1):
            item = self._applied[index - 1]
            if item[1] == CONFIG:
                conf = naive_apply(conf, item[2], f"committed entry {index}")
                self._committed.append((index, conf))
        self._committed_scanned = len(self._applied)

    def forget(self, node: str) -> None:
        self._views.pop(node, None)

    def view(self, node: str, base: int, term_of: _TermOf, entries_from: _EntriesFrom) -> _View:
        """The configuration points of `node`'s log (base = its snapshot index; `term_of(i)` is
        the term it holds at i or None; `entries_from(i)` its entries from i on)."""
        view = self._views.get(node)
        if view is None or view.scanned[0] < base or term_of(view.scanned[0]) != view.scanned[1]:
            view = _View(base, self.genesis if base == 0 else self.at_committed(base))
            view.scanned = (base, term_of(base) or 0)
            self._views[node] = view
        for entry in entries_from(view.scanned[0] + 1):
            if entry.type is EntryType.CONFIG:
                conf = naive_apply(view.last(), entry.data, f"{node}'s entry {entry.index} (term {entry.term})")
                view.points.append((entry.index, conf))
            view.scanned = (entry.index, entry.term)
        return view


def check_leader_config(node: str, conf: ConfigState, implied: ConfigState) -> None:
    assert conf == implied, f"leader config: {node} leads with {_show(conf)}, but its log implies {_show(implied)}"


def check_node_config(node: str, conf: ConfigState, implied: ConfigState) -> None:
    assert conf == implied, f"node config: {node} uses {_show(conf)}, but its log implies {_show(implied)}"


def check_elected_voter(node: str, term: int, implied: ConfigState, committed: ConfigState) -> None:
    """Thesis §4.2.2: a node removed by an entry not yet committed may still be elected (it is
    needed to commit its removal); a node that never was a voter may not."""
    assert node in implied.voters or node in committed.voters, (
        f"learner became leader: {node} leads term {term} but is a voter neither of its latest config "
        f"{_show(implied)} nor of its committed one {_show(committed)}"
    )


def check_one_change_in_flight(node: str, view: _View, max_commit: int) -> None:
    """At most one config entry above the highest index any node ever knew committed."""
    pending = [index for index, _ in view.points if index > max_commit]
    assert len(pending) <= 1, (
        f"two config changes in flight: leader {node} holds uncommitted config entries at {pending} "
        f"(highest commit anywhere: {max_commit})"
    )


def check_campaigner(node: str, term: int, pre_vote: bool, implied: ConfigState, committed: ConfigState) -> None:
    """May campaign: a voter of its latest config, or of its committed config while an
    uncommitted entry removes it (thesis §4.2.2)."""
    kind = "pre-vote" if pre_vote else "vote"
    assert node in implied.voters or node in committed.voters, (
        f"learner campaigns: {node} asks for a {kind} in term {term}, but its log implies {_show(implied)} "
        f"and its committed config is {_show(committed)}"
    )


def check_vote_granted(voter: str, candidate: str, term: int, pre_vote: bool, asked: frozenset[str] | None) -> None:
    kind = "pre-vote" if pre_vote else "vote"
    assert asked is not None and voter in asked, (
        f"learner votes: {voter} granted a {kind} to {candidate} in term {term}, but it is not a voter of "
        f"the configuration the candidate campaigned with ({sorted(asked) if asked else 'never asked'})"
    )


def check_removed_leader(node: str, term: int, since: int, now: int) -> None:
    assert now - since <= STEP_DOWN_TICKS, (
        f"removed leader stays: {node} committed its own removal at tick {since} and still leads "
        f"term {term} at tick {now}"
    )

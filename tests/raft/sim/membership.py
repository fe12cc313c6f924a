"""The simulated cluster with membership changes: `MemberCluster` extends `Cluster` (adding, not
changing it) with a pool of node ids beyond the founders, single-server config changes, and the
lifecycle an operator gives a node:

  * `propose_config(node, change)`: ADD_LEARNER / PROMOTE / REMOVE at a node (the leader, mostly);
  * `maybe_join()`: a node whose ADD_LEARNER is committed starts as `raftsched node --join` does:
    empty storage bootstrapped with the membership a running member reports (so it catches up by
    log, or by snapshot when the leader compacted). A removed id that is added again restarts
    either from its old storage or from a fresh one (a new data directory), drawn from the seed;
  * `maybe_decommission()`: a node whose removal is committed is stopped, as an operator would.

The membership checkers (`member_checkers.py`) run after every ready-drain of every node and on
every vote message, on top of the checkers the base cluster runs.
"""

from __future__ import annotations

from collections import Counter

from raftsched.raft.config import ChangeKind, ConfigChange
from raftsched.raft.core import RaftCore
from raftsched.raft.errors import NotLeaderError, ProposalDroppedError
from raftsched.raft.messages import ConfigState, Entry, Message, Role, VoteRequest, VoteResponse
from raftsched.raft.storage import CompactedError, MemoryStorage, UnavailableError

from . import member_checkers as mchk
from .cluster import Cluster, SimNode

POOL = 5  # node ids n1..n5; the first `size` found the cluster, the rest wait to be added


class MemberCluster(Cluster):
    def __init__(self, size: int, seed: int, *, pool: int = POOL, **kwargs: object) -> None:
        super().__init__(size, seed, **kwargs)  # type: ignore[arg-type]
        self.genesis = ConfigState(frozenset(self.ids))
        for i in range(size + 1, pool + 1):
            self.nodes[f"n{i}"] = SimNode(f"n{i}", MemoryStorage())
        self.ids = tuple(self.nodes)
        self.provisioned: set[str] = set(self.ids[:size])  # running, or down and to be restarted
        self.ever_started: set[str] = set(self.ids[:size])
        self.oracle = mchk.ConfigOracle(self.genesis, self.history.applied)
        self.max_commit = 0
        self.member_counters: Counter[str] = Counter()
        self._asked: dict[tuple[str, int, bool], frozenset[str]] = {}  # (candidate, term, pre) -> voters
        self._removed_since: dict[tuple[str, int], int] = {}  # (leader, term) -> tick of its removal commit
        self._elected: set[tuple[str, int]] = set()
        self.allow_config = True
        self._added_at: dict[str, int] = {}  # node -> index of the ADD_LEARNER it joined after

    # --- lifecycle ---

    def down(self) -> list[str]:
        return [n for n in sorted(self.provisioned) if self.nodes[n].core is None]

    def committed_config(self) -> ConfigState:
        return self.oracle.at_committed(len(self.history.applied))

    def maybe_join(self) -> None:
        """Start every node the committed configuration lists but nobody runs (`node --join`)."""
        members = self.committed_config().members()
        for node_id in sorted(members - self.provisioned):
            source = self._join_source(node_id)
            if source is None:
                continue  # no running member lists it yet: `--join` would fail and be retried
            fresh = node_id not in self.ever_started or self.rng.random() < 0.5
            self.join(node_id, source if fresh else None)

    def _join_source(self, node_id: str) -> ConfigState | None:
        leader = self.leader()
        order = ([leader] if leader else []) + sorted(self.live())
        for other in order:
            conf = self.core(other).conf
            if node_id in conf.members():
                return conf
        return None

    def join(self, node_id: str, conf: ConfigState | None) -> None:
        """Start `node_id` as a member: with a fresh store bootstrapped with `conf`, or (None)
        from the storage an earlier incarnation left."""
        node = self.nodes[node_id]
        if node.core is not None:
            self._crash_now(node)
        if conf is not None:
            incarnation = node.incarnation
            node = self.nodes[node_id] = SimNode(node_id, MemoryStorage.bootstrap(conf.voters, conf.learners))
            node.incarnation = incarnation
            self._added_at[node_id] = self._last_addition(node_id)
            self.history.commit.pop(node_id, None)  # a new data directory: a new commit history
            self.history.persisted_commit.pop(node_id, None)
            self.member_counters["fresh joins"] += 1
            if node_id in self.ever_started:
                self.member_counters["removed id re-added fresh"] += 1
        else:
            self.member_counters["rejoins with old storage"] += 1
        self.oracle.forget(node_id)
        self.provisioned.add(node_id)
        self.ever_started.add(node_id)
        self.log(f"join {node_id} ({'fresh, ' + repr(sorted(conf.members())) if conf else 'old storage'})")
        self.start(node_id)

    def _last_addition(self, node_id: str) -> int:
        """The committed index at which `node_id` last became a learner."""
        self.oracle.at_committed(len(self.history.applied))  # bring the committed points up to date
        before, added = self.genesis, 0
        for index, conf in self.oracle.committed_points():
            if node_id in conf.learners and node_id not in before.members():
                added = index
            before = conf
        return added

    def maybe_decommission(self, rate: float = 1.0) -> None:
        """Stop nodes whose removal is committed (each with probability `rate`)."""
        members = self.committed_config().members()
        for node_id in sorted(self.provisioned - members):
            if rate >= 1.0 or self.rng.random() < rate:
                self.decommission(node_id)

    def decommission(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.core is not None:
            self._crash_now(node)
        self.provisioned.discard(node_id)
        self.member_counters["decommissioned"] += 1
        self.log(f"decommission {node_id}")

    # --- client requests ---

    def propose_config(self, node_id: str, change: ConfigChange) -> int:
        """Propose one change at the node; returns its index, or 0 if refused."""
        core = self.nodes[node_id].core
        if core is None or not self.allow_config:
            return 0
        try:
            index, term = core.propose_config(change)
        except (NotLeaderError, ProposalDroppedError):
            self.member_counters["config refused"] += 1
            return 0
        self.member_counters[f"proposed {change.kind.value}"] += 1
        if change.node == node_id:
            self.member_counters["leader removes itself"] += 1
        self.log(f"{node_id} proposes {change.kind.value} {change.node} at {index} term {term}")
        return index

    def transfer(self, node_id: str, target: str) -> None:
        core = self.nodes[node_id].core
        if core is not None and core.role is Role.LEADER and target in core.conf.voters:
            try:
                core.transfer_leader(target)
            except ProposalDroppedError:
                return
            self.log(f"{node_id} transfers leadership to {target}")

    # --- checks ---

    # Refusals of correct nodes' messages that membership changes make expected: a removed node
    # campaigning (§4.2.3) or still answering, a joiner sent a commit by its wiped predecessor's
    # leader, a TimeoutNow to a node that does not know the transferring leader as a voter.
    HONEST_REFUSALS = frozenset({"not-a-voter", "not-a-member", "commit-beyond-log", "disrupts-leader"})

    def _honest_refusal(self, node: str, msg: Message, reason: str) -> None:
        assert reason in self.HONEST_REFUSALS, f"{node} refused a correct node's message ({reason}): {msg}"
        self.member_counters[f"refused from a correct node: {reason}"] += 1

    def _send(self, node: SimNode, messages: object) -> None:
        msgs: list[Message] = list(messages)  # type: ignore[call-overload]
        for msg in msgs:
            if isinstance(msg, VoteRequest):
                self._on_vote_request(node, msg)
            elif isinstance(msg, VoteResponse) and msg.granted:
                asked = self._asked.get((msg.to, msg.term, msg.pre_vote))
                mchk.check_vote_granted(node.id, msg.to, msg.term, msg.pre_vote, asked)
        super()._send(node, msgs)

    def _on_vote_request(self, node: SimNode, msg: VoteRequest) -> None:
        core = node.live_core()
        key = (node.id, msg.term, msg.pre_vote)
        if key not in self._asked:  # first request of this campaign: is the candidate a voter?
            # Judged by the log the candidate had when it campaigned (up to the last index it
            # names): entries appended later in the same step cannot have made it a learner then.
            view = self._view(node.id, core)
            then = msg.last_log_index
            mchk.check_campaigner(node.id, msg.term, msg.pre_vote, view.conf_at(then),
                                  view.conf_at(min(core.commit, then)))
        # The candidate asks exactly the voters of the configuration it campaigns with.
        self._asked[key] = self._asked.get(key, frozenset()) | {node.id, msg.to}

    def _check_node(self, node: SimNode, core: RaftCore) -> None:
        super()._check_node(node, core)
        self.max_commit = max(self.max_commit, core.commit)
        view = self._view(node.id, core)
        if core.role is not Role.LEADER:
            if not self._joined_replaying(node, view):
                mchk.check_node_config(node.id, core.conf, view.last())
            return
        implied = view.last()
        mchk.check_leader_config(node.id, core.conf, implied)
        if (node.id, core.term) not in self._elected:
            self._elected.add((node.id, core.term))
            elected_at = self._elected_at(core)
            mchk.check_elected_voter(node.id, core.term, view.conf_at(elected_at), view.conf_at(core.commit))
        mchk.check_one_change_in_flight(node.id, view, self.max_commit)
        removal_committed = view.points and view.points[-1][0] <= core.commit
        if removal_committed and node.id not in implied.voters:
            since = self._removed_since.setdefault((node.id, core.term), self.now)
            mchk.check_removed_leader(node.id, core.term, since, self.now)

    def _joined_replaying(self, node: SimNode, view: mchk._View) -> bool:
        """A node started by `--join` holds the membership it was told at index 0, then replays
        the log from index 1: until it reaches its own ADD_LEARNER entry its configuration is that
        membership with the older changes replayed on top (the product does this; it cannot make
        the node campaign or vote wrongly, as a node's own voter status replays exactly)."""
        added_at = self._added_at.get(node.id, 0)
        # Also when it compacted before getting there: its snapshot then carries that same replayed
        # membership, not the committed one the oracle starts a compacted log from (seeds 1766, 2074).
        return view.scanned[0] < added_at

    def _install_snapshot(self, node: SimNode, rd: object) -> None:
        super()._install_snapshot(node, rd)  # type: ignore[arg-type]
        if node.id in self._added_at:
            self.member_counters["joiner caught up by snapshot"] += 1

    def _elected_at(self, core: RaftCore) -> int:
        """The last index of the log the node won its election with (before its no-op)."""
        for index in range(core.log.last_index(), core.log.first_index() - 1, -1):
            if core.log.term(index) != core.term:
                return index
        return core.log.first_index() - 1

    def _view(self, node_id: str, core: RaftCore) -> mchk._View:
        log = core.log

        def term_of(index: int) -> int | None:
            try:
                return log.term(index)
            except (CompactedError, UnavailableError):
                return None

        def entries_from(index: int) -> list[Entry]:
            return log.entries(index) if index <= log.last_index() else []

        return self.oracle.view(node_id, log.first_index() - 1, term_of, entries_from)


def change(kind: ChangeKind, node: str) -> ConfigChange:
    return ConfigChange(kind, node, address=f"sim://{node}")

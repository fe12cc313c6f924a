"""The Raft protocol as a pure state machine, in the style of etcd's raft.

Inputs: `tick()`, `step(message)`, `propose(data)`, `read_index(ctx)`, `transfer_leader(id)`.
Output: a numbered `Ready` (see messages.py for what the driver does with it), then `advance()`.
No clocks (time is a count of ticks), no I/O, no randomness but the injected `rng`.

Implements pre-vote and check-quorum (thesis §9.6), fast log back-off by term, the commit rule of
§5.4.2 with a no-op on election, batching (all proposals between two readies go out in one
persistence batch and one append per follower), pipelining with a bounded in-flight window per
follower, ReadIndex (§6.4), leadership transfer (§3.10), single-server membership changes (§4.1)
and snapshot hand-off for followers whose next entry was compacted away.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from raftsched.quoting import quote
from raftsched.raft import quorum
from raftsched.raft.config import ConfigChange, InvalidChangeError, apply_change, decode_change, encode_change
from raftsched.raft.errors import NotLeaderError, ProposalDroppedError, StateOutOfRangeError, TransferInProgressError
from raftsched.raft.log import RaftLog
from raftsched.raft.messages import (
    NO_NODE,
    AppendRequest,
    AppendResponse,
    ConfigState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    LeaderLost,
    Message,
    ReadState,
    Ready,
    Role,
    SnapshotMeta,
    SnapshotRequest,
    SnapshotResponse,
    SnapshotStatus,
    SoftState,
    TimeoutNow,
    Unreachable,
    VoteRequest,
    VoteResponse,
)
from raftsched.raft.progress import Progress, ProgressState
from raftsched.raft.refusals import Reason, RefusalCounter
from raftsched.raft.storage import CompactedError, Storage, UnavailableError
from raftsched.raft.validate import MAX_INDEX, MAX_TERM, MAX_TERM_JUMP, Problem, check_message, refusal

# Messages whose content depends on state that must be durable first (thesis §3.8).
_AFTER_PERSIST = (VoteRequest, VoteResponse, AppendResponse, SnapshotResponse)
_FROM_LEADER = (AppendRequest, Heartbeat, SnapshotRequest)


@dataclass(frozen=True, slots=True)
class RaftConfig:
    id: str
    election_ticks: int = 10  # randomized in [election_ticks, 2 * election_ticks)
    heartbeat_ticks: int = 1
    max_inflight: int = 64  # append messages in flight per follower
    max_msg_bytes: int = 1 << 20  # entries per append message
    max_apply_bytes: int = 4 << 20  # committed entries per ready
    pre_vote: bool = True
    check_quorum: bool = True

    def __post_init__(self) -> None:
        if self.heartbeat_ticks <= 0 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 0 < heartbeat_ticks < election_ticks")
        if self.max_inflight <= 0:
            raise ValueError("max_inflight must be positive")


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    role: Role
    term: int
    leader: str
    vote: str
    commit: int
    applied: int
    last_index: int
    first_index: int
    config: ConfigState
    progress: dict[str, tuple[int, int, str]]  # follower -> (match, next, state) on the leader
    transferring_to: str


@dataclass(slots=True)
class _PendingRead:
    ctx: int
    index: int
    round: int  # the heartbeat round that must be confirmed by a quorum


class RaftCore:
    def __init__(self, config: RaftConfig, storage: Storage, rng: random.Random, applied: int = 0) -> None:
        hard, conf = storage.initial_state()
        _check_stored_range(hard, storage)
        self.cfg = config
        self.id = config.id
        self.rng = rng
        self.log = RaftLog(storage, hard.commit, applied)
        self.term = hard.term
        self.vote = hard.vote
        self.conf = conf
        # (index, config) of every CONFIG entry above the snapshot, to undo on truncation.
        self._conf_history: list[tuple[int, ConfigState]] = []
        self.role = Role.FOLLOWER
        self.leader = NO_NODE
        self._term_leader = NO_NODE  # who led this term, kept when we lose sight of it (TimeoutNow)
        self.progress: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = config.election_ticks
        self.transferee = NO_NODE
        self.pending_conf_index = 0
        self.removed_at = 0  # index of the committed-to-be entry that removes this leader
        self._msgs: list[Message] = []
        self._msgs_after_persist: list[Message] = []
        self._read_states: list[ReadState] = []
        self._pending_reads: list[_PendingRead] = []
        self._reads_before_commit: list[int] = []  # ctx of reads waiting for the no-op to commit
        self._read_round = 0
        self._read_round_due = False
        self._bcast_due = False
        self._ready_number = 0
        self._persisted_hard = hard
        self._last_soft = SoftState(NO_NODE, Role.FOLLOWER, self.term)
        self._pending_soft: SoftState | None = None
        self.refusals = RefusalCounter()  # messages refused by step(), by reason (issue 14)
        self.may_campaign = True  # False while this node's state is under an alarm
        self._load_config_entries(storage)
        self.become_follower(self.term, NO_NODE)

    def __repr__(self) -> str:
        return f"RaftCore({self.id} {self.role.name} term={self.term} leader={self.leader!r} {self.log})"

    # ==== public inputs =======================================================================

    def tick(self) -> None:
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def step(self, msg: Message) -> None:
        if isinstance(msg, Unreachable | SnapshotStatus | LeaderLost):
            self._step_local(msg)
            return
        problem = self._problem(msg)
        if problem is not None:
            self.refusals.add(refusal(msg, problem))  # and nothing else: no state, no timer, no reply
            return
        if msg.term > self.term:
            if not self._accept_higher_term(msg):
                return
        elif msg.term < self.term:
            self._reply_stale(msg)
            return
        if isinstance(msg, VoteRequest):
            self._handle_vote_request(msg)
        elif self.role is Role.LEADER:
            self._step_leader(msg)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(msg)
        else:
            self._step_follower(msg)

    def propose(self, data: list[bytes]) -> tuple[int, int]:
        """Append commands to the leader's log; returns (index of the first, term)."""
        self._check_can_propose(len(data))
        first = self.log.last_index() + 1
        self._append([Entry(self.term, first + i, EntryType.NORMAL, d) for i, d in enumerate(data)])
        return first, self.term

    def propose_config(self, change: ConfigChange) -> tuple[int, int]:
        """Propose one membership change; only one may be uncommitted at a time (§4.1)."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.committed:
            raise ProposalDroppedError("a membership change is already in progress")
        try:
            apply_change(self.conf, change)
        except InvalidChangeError as err:
            raise ProposalDroppedError(str(err)) from err
        index = self.log.last_index() + 1
        self._append([Entry(self.term, index, EntryType.CONFIG, encode_change(change))])
        self.pending_conf_index = index
        return index, self.term

    def read_index(self, ctx: int) -> None:
        """Ask for a linearizable read point; answered later by a ReadState in a ready (§6.4)."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        if self.log.term_or_zero(self.log.committed) != self.term:
            self._reads_before_commit.append(ctx)  # our no-op is not committed yet
            return
        self._add_read(ctx)

    def transfer_leader(self, target: str) -> None:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        if target == self.id or target == self.transferee:
            return
        if target not in self.conf.voters:
            raise ProposalDroppedError(f"{target} is not a voter")
        self.transferee = target
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        if self.progress[target].match == self.log.last_index():
            self._send(TimeoutNow(self.id, target, self.term))
        else:
            self._maybe_send_append(target, send_if_empty=True)

    def campaign(self) -> None:
        """Start an election now (skipping the timeout), with pre-vote when enabled."""
        if self._promotable() and self.role is not Role.LEADER:
            self._campaign(pre_vote=self.cfg.pre_vote, transfer=False)

    # ==== ready / advance =====================================================================

    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._msgs_after_persist
            or self._read_states
            or self.log.unstable
            or self.log.pending_snapshot
            or self.log.committed > self.log.applied
            or self._bcast_due
            or self._read_round_due
            or self._pending_soft is not None
            or self._hard_state() != self._persisted_hard
        )

    def ready(self) -> Ready:
        self._flush_broadcasts()
        hard = self._hard_state()
        self._ready_number += 1
        rd = Ready(
            number=self._ready_number,
            soft_state=self._pending_soft,
            hard_state=hard if hard != self._persisted_hard else None,
            entries=tuple(self.log.unstable),
            snapshot=self.log.pending_snapshot,
            messages=tuple(self._msgs),
            persisted_messages=tuple(self._msgs_after_persist),
            committed=tuple(self.log.next_committed(self.cfg.max_apply_bytes)),
            read_states=tuple(self._read_states),
        )
        self._msgs, self._msgs_after_persist, self._read_states = [], [], []
        self._pending_soft = None
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver persisted, sent and applied everything in `rd`."""
        assert rd.number == self._ready_number, f"advance of ready {rd.number}, last is {self._ready_number}"
        if rd.hard_state is not None:
            self._persisted_hard = rd.hard_state
        if rd.snapshot is not None:
            self.log.snapshot_persisted(rd.snapshot)
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role is Role.LEADER and self.id in self.progress:
                # The leader counts itself towards commit only once its own write is durable.
                self.progress[self.id].maybe_update(min(last.index, self.log.last_index()))
                self._maybe_commit()
        if rd.committed:
            self.log.applied = max(self.log.applied, rd.committed[-1].index)

    def status(self) -> Status:
        progress = {}
        if self.role is Role.LEADER:
            progress = {p: (pr.match, pr.next, pr.state.name) for p, pr in self.progress.items()}
        return Status(
            self.id,
            self.role,
            self.term,
            self.leader,
            self.vote,
            self.log.committed,
            self.log.applied,
            self.log.last_index(),
            self.log.first_index(),
            self.conf,
            progress,
            self.transferee,
        )

    @property
    def commit(self) -> int:
        return self.log.committed

    # ==== roles ===============================================================================

    def become_follower(self, term: int, leader: str) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader
        self._note_soft()

    def _become_pre_candidate(self) -> None:
        # A pre-candidate changes neither term nor vote: a partitioned node cannot disrupt.
        self.role = Role.PRE_CANDIDATE
        self.votes = {}
        self.leader = NO_NODE
        self._note_soft()

    def _become_candidate(self) -> None:
        assert self.role is not Role.LEADER, "leader cannot become candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE
        self._note_soft()

    def _become_leader(self) -> None:
        assert self.role is Role.CANDIDATE, "only a candidate can become leader"
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        last = self.log.last_index()
        for member in sorted(self.conf.members()):  # sorted: replay must not depend on hash seeds
            pr = Progress(last + 1, self.cfg.max_inflight)
            pr.recent_active = True
            self.progress[member] = pr
        if self.id in self.progress:
            self.progress[self.id].match = self.log.stable_last_index()
            self.progress[self.id].become_replicate()
        # Config changes wait until this term's no-op commits (the fix in thesis §4.1 errata).
        self.pending_conf_index = last + 1
        if self.id not in self.conf.voters and self._conf_history:
            self.removed_at = self._conf_history[-1][0]  # lead only until our removal commits
        self._append([Entry(self.term, last + 1, EntryType.NOOP)])
        self._note_soft()

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NO_NODE
            self._term_leader = NO_NODE
        self.leader = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self.cfg.election_ticks + self.rng.randrange(self.cfg.election_ticks)
        self.votes = {}
        self.progress = {}
        self.transferee = NO_NODE
        self.removed_at = 0
        self._pending_reads = []
        self._reads_before_commit = []
        self._read_round_due = False
        self._bcast_due = False

    def set_may_campaign(self, allowed: bool) -> None:
        """Forbid (or allow again) this node to campaign: its state machine is under an alarm
        (CORRUPT, SPEC §6 promise 15) and must not lead. It still votes and replicates: its log
        is not in question. A node that leads now steps down (the driver first hands leadership
        over, so the cluster does not wait for an election timeout)."""
        self.may_campaign = allowed
        if not allowed and self.role is not Role.FOLLOWER and self.transferee == NO_NODE:
            self.become_follower(self.term, NO_NODE)

    def _promotable(self) -> bool:
        """May start elections: a voter of the latest configuration, or of the committed one
        while an uncommitted entry removes us (thesis §4.2.2: a leader that appended its own
        removal and then lost leadership may still be needed to commit it; it campaigns but
        does not count its own vote, since tallies use the latest configuration)."""
        if self.log.pending_snapshot is not None or not self.may_campaign:
            return False
        return self.id in self.conf.voters or self.id in self.config_for_snapshot(self.log.committed).voters

    def _note_soft(self) -> None:
        if self.leader != NO_NODE:
            self._term_leader = self.leader
        soft = SoftState(self.leader, self.role, self.term)
        if soft != self._last_soft:
            self._last_soft = soft
            self._pending_soft = soft

    # ==== ticks ===============================================================================

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self.randomized_timeout:
            self.election_elapsed = 0
            self._campaign(pre_vote=self.cfg.pre_vote, transfer=False)

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                self.become_follower(self.term, NO_NODE)
                return
            self.transferee = NO_NODE  # a transfer that did not finish in time is abandoned
            if not self.may_campaign:
                self.become_follower(self.term, NO_NODE)  # no successor took over: step down anyway
                return
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _quorum_active(self) -> bool:
        """Check-quorum: a majority of voters were heard from in the last election timeout."""
        active = {p for p, pr in self.progress.items() if pr.recent_active or p == self.id}
        for p, pr in self.progress.items():
            if p != self.id:
                pr.recent_active = False
        voters = self.conf.voters
        return sum(1 for v in voters if v in active) >= quorum.majority(len(voters))

    # ==== elections ===========================================================================

    def _campaign(self, pre_vote: bool, transfer: bool) -> None:
        if self.term >= MAX_TERM or self.log.last_index() >= MAX_INDEX:
            return  # no next term, or no room for our no-op: never overflow (see validate.py)
        if pre_vote:
            self._become_pre_candidate()
            term = self.term + 1
        else:
            self._become_candidate()
            term = self.term
        self.votes[self.id] = True
        if self._tally_votes(pre_vote):
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for voter in sorted(self.conf.voters - {self.id}):
            self._send(VoteRequest(self.id, voter, term, last_index, last_term, pre_vote, transfer))

    def _tally_votes(self, pre_vote: bool) -> bool:
        """Act on the votes so far; True when the election ended."""
        result = quorum.tally(self.conf.voters, self.votes)
        if result is quorum.VoteResult.WON:
            if pre_vote:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
            return True
        if result is quorum.VoteResult.LOST:
            self.become_follower(self.term, NO_NODE)
            return True
        return False

    def _accept_higher_term(self, msg: Message) -> bool:
        """A message from a later term: step down unless it is a (pre-)vote we may ignore."""
        if isinstance(msg, VoteRequest):
            if self._in_lease() and not msg.transfer:
                return False  # §4.2.3: we heard from a leader recently; ignore the disruption
            if msg.pre_vote:
                return True  # a pre-vote never changes our term
        if isinstance(msg, VoteResponse) and msg.pre_vote and msg.granted:
            return True  # a granted pre-vote answers with the term we would campaign in
        self.become_follower(msg.term, msg.frm if isinstance(msg, _FROM_LEADER) else NO_NODE)
        return True

    def _in_lease(self) -> bool:
        """Check-quorum's leader lease: we heard from a live leader within an election timeout."""
        return self.cfg.check_quorum and self.leader != NO_NODE and self.election_elapsed < self.cfg.election_ticks

    def _reply_stale(self, msg: Message) -> None:
        """A message from an earlier term: tell its sender our term so a stale leader steps down."""
        if isinstance(msg, AppendRequest | Heartbeat):
            self._send(AppendResponse(self.id, msg.frm, self.term, False, 0))
        elif isinstance(msg, VoteRequest) and msg.pre_vote:
            self._send(VoteResponse(self.id, msg.frm, self.term, False, pre_vote=True))

    def _handle_vote_request(self, msg: VoteRequest) -> None:
        can_vote = (
            self.vote == msg.frm
            or (self.vote == NO_NODE and self.leader == NO_NODE)
            or (msg.pre_vote and msg.term > self.term)
        )
        # §5.4.1: only for a candidate whose log is at least as up to date as ours.
        if can_vote and self.log.is_up_to_date(msg.last_log_index, msg.last_log_term):
            self._send(VoteResponse(self.id, msg.frm, msg.term, True, msg.pre_vote))
            if not msg.pre_vote:
                self.election_elapsed = 0
                self.vote = msg.frm
        else:
            self._send(VoteResponse(self.id, msg.frm, self.term, False, msg.pre_vote))

    def _step_candidate(self, msg: Message) -> None:
        if isinstance(msg, _FROM_LEADER):
            self.become_follower(self.term, msg.frm)
            self._step_follower(msg)
        elif isinstance(msg, VoteResponse):
            if msg.pre_vote != (self.role is Role.PRE_CANDIDATE):
                return  # an answer to an earlier phase of this election
            self.votes.setdefault(msg.frm, msg.granted)
            self._tally_votes(msg.pre_vote)

    # ==== admission: what a message may claim, given our state (issue 14) ==========================

    def admission(self, msg: Message) -> Problem | None:
        """Why `step` would refuse `msg` now (None: it would take it in). Changes nothing: the
        transport asks before it writes a snapshot's chunks to disk."""
        return self._problem(msg)

    def _problem(self, msg: Message) -> Problem | None:
        problem = check_message(msg)
        if problem is not None:
            return problem
        if (
            type(msg) is AppendRequest
            and msg.frm == self.leader
            and msg.term == self.term
            and msg.to == self.id
            and msg.frm != self.id
        ):
            return None  # the hot path: our leader's append in our term (nothing below refuses it)
        return self._refusal_for(msg)

    def _refusal_for(self, msg: Message) -> Problem | None:
        """Why `msg` must be refused, or None. Runs before any term logic, so a refused message
        moves no term, vote, commit index or timer; `check_message` already checked its ranges."""
        if msg.to != self.id:
            return Reason.WRONG_RECIPIENT, f"addressed to {quote(msg.to)}"
        if msg.frm == self.id:
            return Reason.FROM_SELF, "a message in our own name"
        problem = self._sender_refusal(msg)
        if problem is not None:
            return problem
        if msg.term > self.term + MAX_TERM_JUMP:
            return Reason.TERM_JUMP, f"term {msg.term} is more than {MAX_TERM_JUMP} beyond ours ({self.term})"
        if msg.term < self.term:
            return None  # stale: answered (or dropped) as before, its content is never used
        return self._content_refusal(msg)

    def _sender_refusal(self, msg: Message) -> Problem | None:
        """The sender must be one that may send this kind of message to us."""
        if isinstance(msg, VoteRequest):
            if self._is_voter(msg.frm) or self._may_campaign(msg):
                return None
            return Reason.NOT_A_VOTER, "a vote request from a node that is no voter of our configurations"
        if isinstance(msg, TimeoutNow):
            # From the leader of our term; or, when we never saw it (we restarted), from a voter.
            leader = self._term_leader
            if msg.term < self.term or (msg.term == self.term and msg.frm == leader):
                return None  # (a stale one is dropped below)
            if msg.term == self.term and leader == NO_NODE and self._is_voter(msg.frm):
                return None
            return Reason.DISRUPTS_LEADER, f"TimeoutNow not from the leader of our term ({self._term_leader or 'none'})"
        if isinstance(msg, _FROM_LEADER):
            if self._may_lead(msg):
                return None
            return Reason.NOT_A_MEMBER, "a leader's message from a node that is in no configuration we know"
        if self._is_known(msg.frm):
            return None
        return Reason.NOT_A_MEMBER, "a response from a node that is in no configuration we know"

    def _is_known(self, node: str) -> bool:
        """A member of some configuration we hold: the latest, or one our log still carries
        (a learner being added counts from its entry's append; a removed one until compaction)."""
        return node in self.conf.members() or any(node in conf.members() for _, conf in self._conf_history)

    def _is_voter(self, node: str) -> bool:
        """A voter of a configuration a correct candidate can campaign with (see `_promotable`)."""
        return node in self.conf.voters or node in self.config_for_snapshot(self.log.committed).voters

    def _may_campaign(self, msg: VoteRequest) -> bool:
        """A candidate we do not know as a voter: our log may lack its promotion. Then its log is
        ahead of ours (it holds that entry; where ours differs by a later term we would refuse the
        vote anyway), and it disrupts no live leader of ours."""
        ours = (self.log.last_term(), self.log.last_index())
        return (msg.last_log_term, msg.last_log_index) > ours and not self._in_lease()

    def _may_lead(self, msg: AppendRequest | Heartbeat | SnapshotRequest) -> bool:
        if msg.frm == self.leader or self._is_known(msg.frm):
            return True
        # A leader we do not know: our log may lack the entry that added it. Then its term is beyond
        # our last entry's (§5.4: it would hold that entry), and we follow no live leader.
        return msg.term > self.log.last_term() and not self._in_lease()

    def _content_refusal(self, msg: Message) -> Problem | None:
        """Claims of a current-term (or newer) message that our state can disprove."""
        if isinstance(msg, Heartbeat):
            return self._heartbeat_refusal(msg)
        if self.role is Role.LEADER and msg.term == self.term:
            return self._response_refusal(msg)
        return None

    def _heartbeat_refusal(self, msg: Heartbeat) -> Problem | None:
        """§5.3: a follower commits only what it knows matches the leader's log. A heartbeat names
        the term of the leader's entry at its commit index; by log matching, an entry of ours with
        that term there means our log equals the leader's up to it."""
        if msg.commit <= self.log.committed:
            return None
        last = self.log.last_index()
        if msg.commit > last:
            return Reason.COMMIT_BEYOND_LOG, f"commit {msg.commit} beyond our last index {last}"
        ours = self.log.term_or_zero(msg.commit)
        if ours != msg.commit_term:
            detail = f"commit {msg.commit} at term {msg.commit_term}, our entry there has term {ours}"
            return Reason.COMMIT_NOT_MATCHED, detail
        return None

    def _response_refusal(self, msg: Message) -> Problem | None:
        """A follower acknowledges only what we sent it: indexes in our log, read rounds we started."""
        if isinstance(msg, HeartbeatResponse) and msg.read_seq > self._read_round:
            return Reason.RESPONSE_AHEAD, f"confirms read round {msg.read_seq}, ours is {self._read_round}"
        if isinstance(msg, AppendResponse):
            claimed = max(msg.match_index, msg.reject_index, msg.hint_index)
        elif isinstance(msg, SnapshotResponse):
            claimed = msg.match_index
        else:
            return None
        last = self.log.last_index()
        if claimed > last:
            return Reason.RESPONSE_AHEAD, f"acknowledges index {claimed}, our last is {last}"
        return None

    # ==== follower ============================================================================

    def _step_follower(self, msg: Message) -> None:
        if isinstance(msg, _FROM_LEADER):
            self.election_elapsed = 0
            if self.leader != msg.frm:
                self.leader = msg.frm
                self._note_soft()
        if isinstance(msg, AppendRequest):
            self._handle_append(msg)
        elif isinstance(msg, Heartbeat):
            self._handle_heartbeat(msg)
        elif isinstance(msg, SnapshotRequest):
            self._handle_snapshot(msg)
        elif isinstance(msg, TimeoutNow) and self._promotable():
            self._campaign(pre_vote=False, transfer=True)  # §3.10: skip pre-vote, we were asked

    def _handle_append(self, msg: AppendRequest) -> None:
        if msg.prev_index < self.log.committed:
            # Everything up to our commit index matches by the log matching property.
            self._send(AppendResponse(self.id, msg.frm, self.term, True, self.log.committed))
            return
        if not self.log.match_term(msg.prev_index, msg.prev_term):
            self._reject_append(msg)
            return
        conflict = self.log.find_conflict(msg.entries)
        if conflict:
            new = [e for e in msg.entries if e.index >= conflict]
            self._truncate_configs(conflict)
            self.log.append(new)
            self._track_configs(new)
        last_new = msg.prev_index + len(msg.entries)
        self.log.commit_to(min(msg.commit, last_new))
        self._send(AppendResponse(self.id, msg.frm, self.term, True, last_new))

    def _reject_append(self, msg: AppendRequest) -> None:
        hint = min(msg.prev_index, self.log.last_index())
        hint = self.log.find_conflict_by_term(hint, msg.prev_term)
        response = AppendResponse(
            self.id, msg.frm, self.term, False, 0, msg.prev_index, hint, self.log.term_or_zero(hint)
        )
        self._send(response)

    def _handle_heartbeat(self, msg: Heartbeat) -> None:
        self.log.commit_to(msg.commit)  # backed by our log: `_heartbeat_refusal` checked it
        self._send(HeartbeatResponse(self.id, msg.frm, self.term, msg.read_seq))

    def _handle_snapshot(self, msg: SnapshotRequest) -> None:
        meta = msg.meta
        if meta.index <= self.log.committed:
            pass  # we already have all of it
        elif self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # our log already holds it: just commit
        else:
            self.log.restore(meta)
            self.conf = meta.config
            self._conf_history = []
        self._send(SnapshotResponse(self.id, msg.frm, self.term, True, self.log.committed))

    # ==== leader ==============================================================================

    def _step_leader(self, msg: Message) -> None:
        pr = self.progress.get(msg.frm)
        if pr is None:
            return
        pr.recent_active = True
        pr.unanswered = 0
        if isinstance(msg, AppendResponse):
            self._handle_append_response(msg, pr)
        elif isinstance(msg, HeartbeatResponse):
            self._handle_heartbeat_response(msg, pr)
        elif isinstance(msg, SnapshotResponse) and msg.success and pr.maybe_update(msg.match_index):
            pr.become_probe()
            self._on_match_advanced(msg.frm, pr)

    def _handle_append_response(self, msg: AppendResponse, pr: Progress) -> None:
        if not msg.success:
            if msg.reject_index == 0 and msg.hint_index == 0:
                return  # a stale-term notice; the term check already stepped us down if newer
            probe = msg.hint_index
            if msg.hint_term > 0:
                probe = self.log.find_conflict_by_term(msg.hint_index, msg.hint_term)
            if pr.maybe_decrease(msg.reject_index, probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._maybe_send_append(msg.frm, send_if_empty=True)
            return
        if not pr.maybe_update(msg.match_index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        self._on_match_advanced(msg.frm, pr)

    def _on_match_advanced(self, follower: str, pr: Progress) -> None:
        self._maybe_commit()
        if self.role is not Role.LEADER:
            return  # committing our own removal stepped us down
        self._maybe_send_append(follower, send_if_empty=False)
        if follower == self.transferee and pr.match == self.log.last_index():
            self._send(TimeoutNow(self.id, follower, self.term))

    def _handle_heartbeat_response(self, msg: HeartbeatResponse, pr: Progress) -> None:
        pr.probe_sent = False
        if pr.state is ProgressState.REPLICATE and pr.is_paused():
            pr.inflight.popleft()  # a lost append must not block the window forever (etcd does too)
        if pr.match < self.log.last_index():
            self._maybe_send_append(msg.frm, send_if_empty=True)
        if msg.read_seq > pr.read_acked:
            pr.read_acked = msg.read_seq
            self._release_reads()

    def _step_local(self, msg: Unreachable | SnapshotStatus | LeaderLost) -> None:
        if isinstance(msg, LeaderLost):
            self._leader_lost(msg.frm)
            return
        pr = self.progress.get(msg.frm) if self.role is Role.LEADER else None
        if pr is None:
            return
        if isinstance(msg, Unreachable):
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
        elif pr.state is ProgressState.SNAPSHOT:
            if msg.failed:
                pr.pending_snapshot = 0
            pr.become_probe()
            pr.probe_sent = True  # wait for the follower's answer (or a heartbeat) before probing

    def _leader_lost(self, leader: str) -> None:
        """The stream from our leader closed: it has most likely died. Forget it, so that we
        grant votes now rather than after its lease, and campaign within a few ticks instead of a
        whole election timeout. Safety never depends on timing; and if the leader is alive after
        all, the other voters still hear from it and refuse our pre-vote (§9.6), so it stays."""
        if self.role is not Role.FOLLOWER or leader == NO_NODE or self.leader != leader:
            return
        self.leader = NO_NODE
        self._note_soft()
        if not self._promotable():
            return
        # Survivors campaign in turn by id, a tenth of an election timeout apart (at least two
        # ticks), so they do not split the vote; one whose log is behind fails its pre-vote and
        # the next one wins.
        others = sorted(v for v in self.conf.voters if v != leader)
        rank = others.index(self.id) if self.id in others else len(others)
        remaining = 1 + rank * max(2, self.cfg.election_ticks // 10)
        self.election_elapsed = max(self.election_elapsed, self.randomized_timeout - remaining)

    def _check_can_propose(self, count: int = 1) -> None:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        if self.log.last_index() + count > MAX_INDEX:
            raise ProposalDroppedError(f"the log would pass index {MAX_INDEX}")
        if self.transferee != NO_NODE:
            raise TransferInProgressError(self.transferee)
        if self.removed_at:
            raise ProposalDroppedError("this leader is being removed from the cluster")

    def _append(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        self._track_configs(entries)
        self._bcast_due = True
        if self.id not in self.conf.voters:
            self._maybe_commit()  # a leader that removed itself no longer counts its own log

    def _maybe_commit(self) -> bool:
        """§5.4.2: advance the commit index by counting replicas only for an entry of our term."""
        index = quorum.committed_index(self.conf.voters, self._match_of)
        if index <= self.log.committed or self.log.term_or_zero(index) != self.term:
            return False
        self.log.commit_to(index)
        self._bcast_due = True  # followers learn the new commit index
        if self._reads_before_commit:
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for ctx in waiting:
                self._add_read(ctx)
        if self.removed_at and index >= self.removed_at:
            self.become_follower(self.term, NO_NODE)  # §4.2.2: step down once removal commits
        return True

    def _match_of(self, node: str) -> int:
        pr = self.progress.get(node)
        return pr.match if pr else 0

    # ==== sending =============================================================================

    def _send(self, msg: Message) -> None:
        if isinstance(msg, _AFTER_PERSIST):
            self._msgs_after_persist.append(msg)
        else:
            self._msgs.append(msg)

    def _flush_broadcasts(self) -> None:
        if self.role is not Role.LEADER:
            self._bcast_due = self._read_round_due = False
            return
        if self._bcast_due:
            self._bcast_due = False
            for peer in self._peers():
                self._maybe_send_append(peer, send_if_empty=False)
        if self._read_round_due:
            self._bcast_heartbeat()

    def _peers(self) -> list[str]:
        return [p for p in self.progress if p != self.id]

    def _maybe_send_append(self, to: str, send_if_empty: bool) -> bool:
        """Send what `to` lacks, as many messages as its in-flight window allows."""
        pr = self.progress[to]
        sent = False
        while not pr.is_paused():
            prev = pr.next - 1
            try:
                prev_term = self.log.term(prev)
                entries = self.log.entries(pr.next, self.cfg.max_msg_bytes)
            except CompactedError:
                self._send_snapshot(to, pr)
                return True
            except UnavailableError:
                return sent  # next is beyond our log (a stale probe); wait for the next answer
            if not entries and (sent or not send_if_empty):
                return sent
            commit = self.log.committed
            self._send(AppendRequest(self.id, to, self.term, prev, prev_term, tuple(entries), commit))
            pr.sent(entries[-1].index if entries else prev, len(entries))
            sent = True
            if not entries or pr.state is not ProgressState.REPLICATE:
                return True
        return sent

    def _send_snapshot(self, to: str, pr: Progress) -> None:
        if not pr.recent_active:
            return  # do not stream a snapshot to a node we have not heard from
        meta = self.log.storage.snapshot_meta()
        pr.become_snapshot(meta.index)
        self._send(SnapshotRequest(self.id, to, self.term, meta))

    def _bcast_heartbeat(self) -> None:
        if self._read_round_due:
            self._read_round += 1
            self._read_round_due = False
        for peer in self._peers():
            pr = self.progress[peer]
            commit, commit_term = self._heartbeat_commit(pr)
            self._send(Heartbeat(self.id, peer, self.term, commit, self._read_round, commit_term))
            if pr.heartbeat_round():
                self._maybe_send_append(peer, send_if_empty=True)

    def _heartbeat_commit(self, pr: Progress) -> tuple[int, int]:
        """The commit index a follower may take from a heartbeat, capped at what it holds, with
        the term of our entry there; (0, 0) when that entry is compacted away (it then needs a
        snapshot, and commits with it)."""
        commit = min(pr.match, self.log.committed)
        try:
            return commit, self.log.term(commit)
        except (CompactedError, UnavailableError):
            return 0, 0

    # ==== ReadIndex ===========================================================================

    def _add_read(self, ctx: int) -> None:
        if self.conf.voters <= {self.id}:
            self._read_states.append(ReadState(ctx, self.log.committed))
            return
        # Reads arriving before the next heartbeat round share it: one round confirms them all.
        self._pending_reads.append(_PendingRead(ctx, self.log.committed, self._read_round + 1))
        self._read_round_due = True

    def _release_reads(self) -> None:
        """Release every read whose heartbeat round a majority of voters confirmed."""
        confirmed = quorum.committed_index(self.conf.voters, self._read_acked)
        released = 0
        for read in self._pending_reads:
            if read.round > confirmed:
                break
            self._read_states.append(ReadState(read.ctx, read.index))
            released += 1
        del self._pending_reads[:released]

    def _read_acked(self, node: str) -> int:
        if node == self.id:
            return self._read_round
        pr = self.progress.get(node)
        return pr.read_acked if pr else 0

    # ==== membership ==========================================================================

    def _load_config_entries(self, storage: Storage) -> None:
        first, last = storage.first_index(), storage.last_index()
        if last >= first:
            self._track_configs(storage.entries(first, last + 1))

    def _track_configs(self, entries: list[Entry]) -> None:
        """A configuration takes effect as soon as its entry is in the log (§4.1)."""
        for entry in entries:
            if entry.type is not EntryType.CONFIG:
                continue
            try:
                new = apply_change(self.conf, decode_change(entry.data))
            except (InvalidChangeError, ValueError, KeyError):
                continue  # committed garbage must not crash us; the leader never proposes it
            self._conf_history.append((entry.index, self.conf))
            self._set_config(new, entry.index)

    def _truncate_configs(self, from_index: int) -> None:
        """Entries from `from_index` are being replaced: undo the configurations they carried."""
        while self._conf_history and self._conf_history[-1][0] >= from_index:
            _, previous = self._conf_history.pop()
            self._set_config(previous, 0)

    def _set_config(self, conf: ConfigState, index: int) -> None:
        self.conf = conf
        if self.role is not Role.LEADER:
            return
        last = self.log.last_index()
        for member in sorted(conf.members()):
            if member not in self.progress:
                self.progress[member] = Progress(last + 1, self.cfg.max_inflight)
                self.progress[member].recent_active = True
        for member in list(self.progress):
            if member not in conf.members() and member != self.id:
                del self.progress[member]
        if self.id not in conf.voters and index:
            self.removed_at = index

    def config_for_snapshot(self, index: int) -> ConfigState:
        """The configuration in force at `index` (for a snapshot taken there)."""
        conf = self.conf
        for entry_index, previous in reversed(self._conf_history):
            if entry_index > index:
                conf = previous
        return conf

    def compacted_to(self, index: int) -> None:
        """The driver compacted the log up to `index`: forget config history below it."""
        self._conf_history = [(i, c) for i, c in self._conf_history if i > index]

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)


def _check_stored_range(hard: HardState, storage: Storage) -> None:
    if hard.term > MAX_TERM or storage.last_index() > MAX_INDEX:
        raise StateOutOfRangeError(
            f"stored term {hard.term} / last index {storage.last_index()} beyond {MAX_TERM} / {MAX_INDEX}: "
            "restore this node's data from a backup"
        )


def snapshot_meta_at(core: RaftCore, index: int) -> SnapshotMeta:
    """Metadata of a snapshot of the state machine at applied index `index`."""
    return SnapshotMeta(index, core.log.term(index), core.config_for_snapshot(index))

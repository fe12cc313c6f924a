"""The leader's corruption check (SPEC §6 promise 15): are all replicas' stored states the same?

Every `--corrupt-check-interval` (and soon after this node becomes leader, so a node restarted on
a damaged directory is caught at once) the leader proposes a CheckHashCmd. Every node hashes its
stored state right after applying it (`raftsched.corruption`), so all digests describe the same
applied index. The leader collects them; the digest a majority of the members share is right, and
a node whose digest differs gets a CORRUPT alarm (a replicated AlarmCmd). A node under that alarm
serves no reads and never leads until it is rebuilt (`raftsched node --rebuild-from-peers`); the
alarm is cleared by the first check that finds its state equal to the majority's again. Nothing is
decided without a majority: a check that hears from too few nodes changes no alarm.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from raftsched.raft.errors import NotLeaderError, ProposalDroppedError
from raftsched.raft_driver import OutcomeUnknownError, ProposalLostError
from raftsched.state import commands as cmds
from raftsched.v1 import admin_pb2, commands_pb2

log = logging.getLogger("raftsched.corruption")
CORRUPT = "CORRUPT"
FIRST_CHECK_S = 2.0  # after becoming leader: let followers apply what it committed at election
RECHECK_S = 10.0  # while an alarm is active, check this often (a rebuilt node is cleared soon)
COLLECT_S = 120.0  # the longest wait for every node's digest (hashing a large state takes a while)
STRAGGLER_S = 10.0  # once a majority answered, how long to wait for the others
POLL_S = 0.25
# What proposing the check raises while leadership moves (found by tests/fuzz: a TransferLeader
# during a check logged a traceback as if the check had failed).
LEADERSHIP_CHANGING = (NotLeaderError, ProposalDroppedError, ProposalLostError, OutcomeUnknownError)


@dataclass(frozen=True, slots=True)
class Verdict:
    index: int
    majority: bytes | None  # the digest more than half of the members share (None: no majority)
    agree: frozenset[str]
    differ: frozenset[str]
    silent: frozenset[str]  # members that gave no digest in time


def judge(members: frozenset[str], digests: dict[str, bytes], index: int) -> Verdict:
    """Which members agree with the majority digest (pure; members = voters and learners)."""
    counts = Counter(digests[m] for m in members if m in digests)
    majority = next((d for d, n in counts.items() if 2 * n > len(members)), None)
    answered = frozenset(m for m in members if m in digests)
    if majority is None:
        return Verdict(index, None, frozenset(), frozenset(), members - answered)
    agree = frozenset(m for m in answered if digests[m] == majority)
    return Verdict(index, majority, agree, answered - agree, members - answered)


Propose = Callable[[commands_pb2.Command], Awaitable[commands_pb2.ApplyResult]]
LocalHash = Callable[[int], "tuple[int, bytes] | None"]  # check id -> (index, digest) once hashed
# A peer's answer: (index, digest); or its applied index while it has no digest; or None (down).
PeerAnswer = tuple[int, bytes] | int | None
PeerHash = Callable[[str, int], Awaitable[PeerAnswer]]


class CorruptionChecker:
    """Leader-only; owned and stopped by the leader scheduler."""

    def __init__(self, node_id: str, interval_s: float, propose: Propose, local_hash: LocalHash,
                 peer_hash: PeerHash, members: Callable[[], frozenset[str]],
                 alarms: Callable[[], list[admin_pb2.Alarm]], rng: random.Random | None = None) -> None:
        self._id = node_id
        self._interval = interval_s
        self._propose = propose
        self._local_hash = local_hash
        self._peer_hash = peer_hash
        self._members = members
        self._alarms = alarms
        self._rng = rng or random.Random()
        self.checks = Counter[str]()  # outcomes, for metrics: match, mismatch, incomplete, failed

    async def run(self) -> None:
        await asyncio.sleep(min(FIRST_CHECK_S, self._interval))
        while True:
            try:
                verdict = await self.check_once()
                self.checks[_outcome(verdict)] += 1
            except asyncio.CancelledError:
                raise
            except LEADERSHIP_CHANGING as err:  # a transfer or a new leader: this check has no verdict
                self.checks["incomplete"] += 1
                log.info("corruption check skipped: leadership is changing (%s)", err)
            except Exception:
                self.checks["failed"] += 1
                log.exception("corruption check failed; trying again at the next interval")
            corrupt = any(a.alarm == CORRUPT for a in self._alarms())
            await asyncio.sleep(min(self._interval, RECHECK_S) if corrupt else self._interval)

    async def check_once(self) -> Verdict:
        check_id = self._rng.getrandbits(63)
        await self._propose(commands_pb2.Command(check_hash=commands_pb2.CheckHashCmd(check_id=check_id)))
        members = self._members()
        index, digests = await self._collect(check_id, members)
        verdict = judge(members, digests, index)
        log.info("corruption check at index %d: %d of %d members agree, %d differ, %d silent", verdict.index,
                 len(verdict.agree), len(members), len(verdict.differ), len(verdict.silent))
        await self._act(verdict)
        return verdict

    async def _collect(self, check_id: int, members: frozenset[str]) -> tuple[int, dict[str, bytes]]:
        """Every member's digest, as they come. Stop when all answered; or a while after a majority
        did (a node that is down, or restarted after applying the check, never answers); or at
        COLLECT_S."""
        loop = asyncio.get_running_loop()
        digests: dict[str, bytes] = {}
        gone: set[str] = set()  # applied past the check without a digest: it never will have one
        index = 0
        deadline = loop.time() + COLLECT_S
        while True:
            for member in sorted(members - digests.keys() - gone):
                answer = self._local_hash(check_id) if member == self._id else await self._peer_hash(member, check_id)
                if isinstance(answer, tuple):
                    index, digests[member] = answer
                elif isinstance(answer, int) and index and answer > index:
                    gone.add(member)
            if digests.keys() | gone >= members or loop.time() > deadline:
                return index, digests
            if 2 * len(digests) > len(members):
                deadline = min(deadline, loop.time() + STRAGGLER_S)
            await asyncio.sleep(POLL_S)

    async def _act(self, verdict: Verdict) -> None:
        active = {a.node for a in self._alarms() if a.alarm == CORRUPT}
        if verdict.majority is None:
            if verdict.silent or active:
                log.warning("corruption check at index %d: no digest is shared by a majority (%d silent)",
                            verdict.index, len(verdict.silent))
            return
        members = verdict.agree | verdict.differ | verdict.silent
        for node in sorted(verdict.differ - active):
            reason = (f"its stored state at index {verdict.index} differs from the one "
                      f"{len(verdict.agree)} of {len(members)} members hold")
            log.error("corruption check: node %s: %s: raising CORRUPT", node, reason)
            await self._propose(cmds.alarm(node, CORRUPT, active=True, reason=reason))
        for node in sorted(active & verdict.agree):
            log.warning("corruption check: node %s agrees with the majority again: clearing CORRUPT", node)
            await self._propose(cmds.alarm(node, CORRUPT, active=False))
        for node in sorted(active - members):
            await self._propose(cmds.alarm(node, CORRUPT, active=False))  # no longer a member


def _outcome(verdict: Verdict) -> str:
    if verdict.majority is None or verdict.silent:
        return "incomplete"
    return "mismatch" if verdict.differ else "match"

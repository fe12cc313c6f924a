"""Reply routing: the state the outbound side (`peers.RaftTransport`) and the inbound side
(`service.RaftServicer`) share.

Responses are not new calls. A `VoteResponse` answers the `RequestVote` call that is waiting for
it, and `AppendResponse` / `HeartbeatResponse` travel back on the `AppendEntries` stream the
leader opened. This module keeps those pending answers and open streams, keyed by the peer that
will receive the response, so the core never needs to know which call a message answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from raftsched.quoting import quote
from raftsched.raft.messages import (
    AppendResponse,
    HeartbeatResponse,
    LeaderLost,
    Message,
    SnapshotResponse,
    VoteResponse,
)
from raftsched.raft.refusals import Reason, Refusal, RefusalCounter, RefusalLog, describe
from raftsched.raft.validate import Problem, check_message, refusal
from raftsched.transport import convert
from raftsched.v1 import raft_pb2 as pb

log = logging.getLogger(__name__)

Deliver = Callable[[Message], None]

# Queued replies per inbound append stream. A leader pipelines at most its in-flight window plus
# heartbeats, so this is far above normal use; past it replies are dropped and the leader resends.
REPLY_QUEUE_LIMIT: Final = 4096

# Prefix of the UNAVAILABLE details a voter returns when its core gave no answer to a vote call
# (none in time, or a newer request from the same candidate took the answer). The candidate's
# transport recognises it: the peer is reachable, it just did not answer this call.
NO_ANSWER_PREFIX: Final = "no answer from the Raft core: "

VoteKey = tuple[str, bool]  # (candidate id, pre_vote)


class VoteSuperseded(Exception):
    """A newer vote request from the same candidate (same pre-vote flag) took over the answer."""


class RouterClosed(Exception):
    """The transport closed while a call was waiting for the core's answer."""


class _End:
    """Marks the end of a reply stream: the inbound side finished or the route was replaced."""


END: Final = _End()


@dataclass(eq=False)
class ReplyRoute:
    """One inbound AppendEntries stream: the way back to `leader`."""

    leader: str
    queue: asyncio.Queue[pb.AppendEntriesResponse | _End] = field(
        default_factory=lambda: asyncio.Queue(maxsize=REPLY_QUEUE_LIMIT)
    )
    error: str | None = None  # set when the inbound side failed: the stream ends with this status

    def end(self) -> None:
        """Ask the stream's writer to finish once what is queued has been written."""
        try:
            self.queue.put_nowait(END)
        except asyncio.QueueFull:
            # The writer is behind; drop the oldest reply so the end marker always fits.
            self.queue.get_nowait()
            self.queue.put_nowait(END)


class ReplyRouter:
    """Pending vote answers and inbound append streams, plus the node's `deliver` callback.

    Everything runs on the one event loop, so plain dicts are safe: no method awaits.
    """

    def __init__(self, node_id: str, deliver: Deliver, *, rpc_timeout: float) -> None:
        self.node_id = node_id
        self.rpc_timeout = rpc_timeout
        self._deliver = deliver
        self._votes: dict[VoteKey, asyncio.Future[VoteResponse]] = {}
        self._routes: dict[str, ReplyRoute] = {}
        self._snapshots: dict[str, asyncio.Future[SnapshotResponse]] = {}
        # Set by the node: check and stage a received snapshot file before the core sees its
        # request (raises SnapshotTransferError to refuse it), and where such files are written.
        self.snapshot_sink: Callable[[Any], Awaitable[None]] | None = None
        self.snapshot_dir: Path | None = None
        # Set by the node: why the core would refuse a message now (None: it would take it). Lets a
        # snapshot from a stranger be refused on its first chunk, before anything is written.
        self.admission: Callable[[Message], Problem | None] | None = None
        self._closed = False
        self.refusals = RefusalCounter()  # inbound messages refused at the boundary, by reason
        self._refusal_log = RefusalLog()

    # --- refusing (issue 14) -------------------------------------------------------------------

    def inbound_problem(self, msg: Message, certified: str | None) -> Problem | None:
        """What the boundary refuses in an inbound request: a message for another node, in our own
        name, in the name of another node than the caller's certificate (`certified`: the node id
        the TLS client certificate names, None without one), or out of range (`check_message`)."""
        if msg.to != self.node_id:
            return Reason.WRONG_RECIPIENT, f"addressed to {quote(msg.to)}: check the peer addresses"
        if msg.frm == self.node_id:
            return Reason.FROM_SELF, "a message in our own name"
        if certified is not None and msg.frm != certified:
            return Reason.FROM_NOT_CERTIFICATE, f"the caller's certificate names node {quote(certified)}"
        return check_message(msg)

    def refuse(self, msg: Message, problem: Problem) -> None:
        self.note_refusal(refusal(msg, problem))

    def note_refusal(self, refused: Refusal) -> None:
        """Count a refusal, and log it unless its reason was logged within the last interval."""
        self.refusals.add(refused)
        log_refusals(self.node_id, self.refusals.take_unlogged(), self._refusal_log)

    @property
    def closed(self) -> bool:
        return self._closed

    def deliver(self, msg: Message) -> None:
        """Hand `msg` to the core; a failing callback is logged, never raised into the transport."""
        try:
            self._deliver(msg)
        except Exception:
            log.exception("node=%s deliver failed for %s from %s", self.node_id, type(msg).__name__, quote(msg.frm))

    # --- votes ---------------------------------------------------------------------------------

    def expect_vote(self, candidate: str, pre_vote: bool) -> asyncio.Future[VoteResponse]:
        """Register the call waiting for our answer to `candidate`; the latest request wins."""
        key = (candidate, pre_vote)
        older = self._votes.get(key)
        if older is not None and not older.done():
            # The candidate retried (it timed out on its side or moved to a new term): answer the
            # newest call, the older one's caller has most likely given up.
            older.set_exception(VoteSuperseded(f"superseded by a newer vote request from {candidate}"))
        fut: asyncio.Future[VoteResponse] = asyncio.get_running_loop().create_future()
        self._votes[key] = fut
        return fut

    def forget_vote(self, candidate: str, pre_vote: bool, fut: asyncio.Future[VoteResponse]) -> None:
        key = (candidate, pre_vote)
        if self._votes.get(key) is fut:
            del self._votes[key]

    def route_vote(self, msg: VoteResponse) -> None:
        fut = self._votes.pop((msg.to, msg.pre_vote), None)
        if fut is None or fut.done():
            log.debug("node=%s no pending vote call from %s; dropping a vote response", self.node_id, quote(msg.to))
            return
        fut.set_result(msg)

    # --- append streams ------------------------------------------------------------------------

    def open_route(self, leader: str) -> ReplyRoute:
        """Make a new inbound stream THE way back to `leader`, ending the one it replaces."""
        route = ReplyRoute(leader)
        older = self._routes.get(leader)
        self._routes[leader] = route
        if older is not None:
            older.end()
        if self._closed:
            route.end()
        return route

    def close_route(self, route: ReplyRoute) -> None:
        """Forget a finished inbound stream. If it was still the way back to its leader (not
        replaced by a newer stream, the transport not closing), tell the core that the leader's
        stream is gone: a killed leader shows this way long before an election timeout."""
        if self._routes.get(route.leader) is route:
            del self._routes[route.leader]
            if not self._closed:
                self.deliver(LeaderLost(frm=route.leader, to=self.node_id))

    def route_append(self, msg: AppendResponse | HeartbeatResponse) -> None:
        route = self._routes.get(msg.to)
        if route is None:
            log.debug(
                "node=%s no append stream from %s; dropping %s", self.node_id, quote(msg.to), type(msg).__name__
            )
            return
        try:
            route.queue.put_nowait(convert.append_response_to_pb(msg))
        except asyncio.QueueFull:
            # Raft tolerates loss: the leader times out and resends what it did not hear about.
            log.warning(
                "node=%s reply queue to %s full; dropping %s", self.node_id, quote(msg.to), type(msg).__name__
            )

    # --- snapshots -----------------------------------------------------------------------------

    def expect_snapshot(self, leader: str) -> asyncio.Future[SnapshotResponse]:
        older = self._snapshots.get(leader)
        if older is not None and not older.done():
            older.cancel()
        fut: asyncio.Future[SnapshotResponse] = asyncio.get_running_loop().create_future()
        self._snapshots[leader] = fut
        return fut

    def route_snapshot(self, msg: SnapshotResponse) -> None:
        fut = self._snapshots.pop(msg.to, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def close(self) -> None:
        """End every inbound stream and fail every waiting vote call; later routes end at once."""
        self._closed = True
        for route in list(self._routes.values()):
            route.end()
        self._routes.clear()
        for fut in self._votes.values():
            if not fut.done():
                fut.set_exception(RouterClosed("the Raft transport is closing"))
        self._votes.clear()


def log_refusals(node_id: str, refused: list[Refusal], limiter: RefusalLog) -> None:
    """One line per reason per interval, no traceback; an error for a commit our log cannot back."""
    for item, suppressed in limiter.lines(refused, time.monotonic()):
        log.log(logging.ERROR if item.reason.loud else logging.WARNING, describe(item, node_id, suppressed))

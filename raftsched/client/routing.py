"""Leader following and retry policy shared by the sync and asyncio clients, free of I/O.

A call walks the cluster's addresses, the last known leader first. A node that is not the leader
answers FAILED_PRECONDITION or UNAVAILABLE with the leader's address in the trailing metadata key
`raftsched-leader`; the call follows that hint at once. A node that cannot be reached, or has no
leader, sends the call on to the next address; after every address failed once, the call sleeps an
exponential backoff with jitter. Everything ends at the call's overall deadline.

RESOURCE_EXHAUSTED means the leader is overloaded (too many proposals pending) and refused the
call before doing anything: an idempotent call waits a growing backoff and tries the same node
again (other nodes would only forward it to the same leader). One that says a message was too
large is not retried: it cannot succeed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from raftsched.client.errors import ClientError, OutcomeUnknownError, error_for

LEADER_METADATA_KEY = "raftsched-leader"
IDEMPOTENCY_METADATA_KEY = "raftsched-idempotency-key"

# Codes after which the same request may go to another node. UNAVAILABLE is promised to mean
# "not applied" (SPEC §4); DEADLINE_EXCEEDED may have been applied, so only idempotent calls repeat.
_ALWAYS_RETRY = frozenset({"UNAVAILABLE"})
_IDEMPOTENT_RETRY = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
OVERLOADED = "RESOURCE_EXHAUSTED"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter between rounds over the cluster."""

    initial: float = 0.05
    maximum: float = 1.0
    multiplier: float = 2.0

    def delay(self, round_number: int, rng: random.Random) -> float:
        ceiling = min(self.maximum, self.initial * self.multiplier ** max(0, round_number - 1))
        # Why jitter: many clients that lost the same leader should not retry in lockstep.
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


OVERLOAD_BACKOFF = Backoff(initial=0.1, maximum=2.0)
_RNG = random.Random()  # for jitter only; one per process (seeding one per call reads urandom)


def is_overload(code: str, message: str) -> bool:
    """RESOURCE_EXHAUSTED for load (worth retrying later), not for a message over the size limit."""
    return code == OVERLOADED and "larger than max" not in message


@dataclass(slots=True)
class Router:
    """Known addresses and the last known leader; shared by every call of one client."""

    addresses: list[str]
    leader: str = ""

    @classmethod
    def of(cls, addresses: Iterable[str]) -> Router:
        unique = list(dict.fromkeys(a.strip() for a in addresses if a.strip()))
        if not unique:
            raise ClientError("INVALID_ARGUMENT", "no cluster address given")
        return cls(unique)

    def order(self) -> list[str]:
        """Addresses to try in one round: the last known leader first."""
        if not self.leader:
            return list(self.addresses)
        return [self.leader, *(a for a in self.addresses if a != self.leader)]

    def note_leader(self, address: str) -> None:
        if address and address not in self.addresses:
            self.addresses.append(address)  # a hint may name a node the caller did not list
        self.leader = address


def leader_hint(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The `raftsched-leader` value, '' when present but empty (no leader known), else None."""
    for key, value in metadata or ():
        if key == LEADER_METADATA_KEY:
            return value.decode() if isinstance(value, bytes) else value
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(slots=True)
class CallState:
    """The progress of one logical call across attempts; decides where and when to try next."""

    router: Router
    deadline: float
    idempotent: bool
    attempt_timeout: float | None = None  # cap per attempt, for idempotent calls only
    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random = field(default_factory=lambda: _RNG)
    clock: Callable[[], float] = time.monotonic
    _queue: list[str] = field(default_factory=list)
    _round: int = 0
    _hops: int = 0
    _overloads: int = 0
    _last: ClientError | None = None

    def __post_init__(self) -> None:
        self._queue = self.router.order()

    def target(self) -> str:
        return self._queue[0]

    def timeout(self) -> float:
        """Seconds the next attempt may take; raises the last error once the deadline passed."""
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise self._deadline_error()
        if self.idempotent and self.attempt_timeout is not None:
            # Why: an idempotent call stuck on a frozen node may move on and still finish in time.
            return min(remaining, self.attempt_timeout)
        return remaining

    def succeeded(self, leader: str | None = None) -> None:
        """The attempt was answered; `leader` is the answer's leader hint (a follower that forwarded
        the call names the leader, so the next call goes there directly)."""
        self.router.note_leader(leader or self.target())

    def failed(self, code: str, message: str, hint: str | None, outcome_unknown: bool = False) -> float:
        """Record a failed attempt; return seconds to wait before the next, or raise its ClientError
        (typed by raftsched.client.errors.error_for)."""
        error = error_for(code, one_line(message) or code, hint=hint, outcome_unknown=outcome_unknown,
                          overloaded=is_overload(code, message))
        if self.idempotent and is_overload(code, message):
            self._last = error
            return self._back_off()
        if not self._retryable(code, hint):
            raise error
        self._last = error
        if hint and hint != self.target() and self._hops <= len(self.router.addresses):
            self._hops += 1  # bounded: two nodes naming each other must not loop without a pause
            self.router.note_leader(hint)
            self._queue = [hint, *(a for a in self._queue if a != hint)]
            return 0.0
        if self.router.leader == self.target():
            self.router.leader = ""  # it failed us; do not start the next call there
        self._queue.pop(0)
        if self._queue:
            return 0.0
        return self._next_round()

    def _retryable(self, code: str, hint: str | None) -> bool:
        if code == "FAILED_PRECONDITION":
            return hint is not None  # not the leader; without the key it is the request's fault
        return code in (_IDEMPOTENT_RETRY if self.idempotent else _ALWAYS_RETRY)

    def _next_round(self) -> float:
        self._round += 1
        self._hops = 0
        self._queue = self.router.order()
        delay = self.backoff.delay(self._round, self.rng)
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise self._deadline_error()
        return min(delay, remaining)

    def _back_off(self) -> float:
        """Overloaded: wait longer each time, then try the same node again."""
        self._overloads += 1
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise self._deadline_error()
        return min(OVERLOAD_BACKOFF.delay(self._overloads, self.rng), remaining)

    def _deadline_error(self) -> ClientError:
        tried = ", ".join(self.router.addresses)
        if self._last is None:
            return OutcomeUnknownError("DEADLINE_EXCEEDED", f"no answer from {tried} in time")
        last = self._last
        # The same type as the last attempt's error: what it says about the outcome still holds.
        return error_for(last.code, f"{last.message} (tried {tried})", hint=getattr(last, "leader", None),
                         outcome_unknown=isinstance(last, OutcomeUnknownError),
                         overloaded=is_overload(last.code, last.message))


def plan(router: Router, timeout: float, *, idempotent: bool, attempt_timeout: float | None,
         rng: random.Random | None = None) -> CallState:
    state = CallState(router, time.monotonic() + timeout, idempotent, attempt_timeout)
    if rng is not None:
        state.rng = rng
    return state


def default_attempt_timeout(timeout: float) -> float:
    """A third of the overall deadline, at least half a second."""
    return max(0.5, timeout / 3)


def ensure_sequence(addresses: str | Sequence[str]) -> list[str]:
    if isinstance(addresses, str):
        return [a for a in addresses.split(",") if a.strip()]
    return list(addresses)

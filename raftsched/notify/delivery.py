"""The leader's webhook delivery (SPEC §10, promise 13): a task of its own, never in the Raft loop.

While this node leads, `Notifier` announces the new leader (a LeaderChangedCmd, whose apply makes
the leader.changed event), then looks at each sink's outbox in the state machine every ROUND_S,
and at once whenever a request ends, and POSTs what is due, at most `concurrency` requests per
sink at once (so a backlog drains at the receiver's speed). Answers are not awaited by
anything else: dispatch, apply and the Raft loop go on while a receiver is slow or down.

Progress goes back through the log: delivered and expired ids, failed attempts and the last
error are batched into one NotifyAckCmd every REPORT_S (or sooner when REPORT_MAX ids wait). Until
that applies, the ids delivered are remembered here so this leader does not send them again; a
leader that dies before its acknowledgement committed leaves them in the outbox, and the next
leader sends them again with the same id (at least once).

A failed delivery waits initial * 2^(failures-1) (capped, with jitter) before its next try, and
its sink as a whole waits as long after consecutive failures, so a receiver that is down gets a
few requests per backoff period, not one per pending event. An event older than the retry horizon
is given up and counted as expired. Backoff state lives in the leader's memory: a new leader tries
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from raftsched.notify import webhook
from raftsched.notify.webhook import RetryPolicy
from raftsched.v1 import commands_pb2, notify_pb2

log = logging.getLogger("raftsched.notify")
# httpx logs every request with its URL at INFO; a sink's URL may be a secret (many are).
logging.getLogger("httpx").setLevel(logging.WARNING)
ROUND_S = 0.1
REPORT_S = 0.2
REPORT_MAX = 500  # ids waiting for an acknowledgement before one is proposed at once
SCAN = 2000  # outbox ids a round looks at per sink (steps over those in flight or backing off)
ANNOUNCE_RETRY_S = 1.0
MAX_ERROR = 300

Propose = Callable[[commands_pb2.Command], Awaitable[commands_pb2.ApplyResult]]


class EventSource(Protocol):
    """The read side of the state machine this needs (`SchedulerState`)."""

    def notify_sinks(self) -> list[notify_pb2.NotifySink]: ...
    def pending_events(self, sink: str, *, skip: Callable[[str], bool], limit: int,
                       scan: int) -> list[notify_pb2.NotifyEvent]: ...
    def is_pending(self, sink: str, event_id: str) -> bool: ...


@dataclass
class _SinkState:
    """This leader's view of one sink: what is in flight, done but not yet acknowledged, waiting."""

    inflight: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)  # delivered or expired, acknowledgement not applied yet
    retry: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (failures, next try)
    streak: int = 0  # consecutive failed requests
    closed_until: float = 0.0  # no request before this (monotonic)
    progress: notify_pb2.NotifyProgress = field(default_factory=notify_pb2.NotifyProgress)

    def skip(self, now: float) -> Callable[[str], bool]:
        def skipped(event_id: str) -> bool:
            if event_id in self.inflight or event_id in self.done:
                return True
            waiting = self.retry.get(event_id)
            return waiting is not None and waiting[1] > now
        return skipped


@dataclass
class DeliveryStats:
    """This node's delivery counts while it led (the replicated ones are on each sink)."""

    delivered: int = 0
    failed: int = 0
    expired: int = 0
    reports: int = 0
    loop_failures: int = 0


class Notifier:
    """Delivers notification events while this node leads; started and stopped with leadership."""

    def __init__(self, events: EventSource, propose: Propose, *, policy: RetryPolicy, cluster: str,
                 leader: Callable[[], tuple[str, int]], concurrency: int = 4,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000),
                 tls: ssl.SSLContext | None = None) -> None:
        self._events = events
        self._propose = propose
        self.policy = policy
        self._cluster = cluster
        self._leader = leader  # (this node's id, its term)
        self._concurrency = concurrency
        self._clock = clock
        self._rng = random.Random()
        self._sinks: dict[str, _SinkState] = {}
        self._task: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()  # a request ended: a slot is free, go again without waiting a round
        self._last_report = 0.0
        self.stats = DeliveryStats()
        # https receivers are verified against the system's CA store (so an internal CA added
        # there with update-ca-certificates works); made once, at start, off the hot path.
        self._tls = tls or ssl.create_default_context()

    # --- lifecycle ---

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._sinks.clear()
            self._task = asyncio.create_task(self._run(), name="notify")

    def halt(self) -> list[asyncio.Task[None]]:
        """Cancel at once (leadership is lost: not one more request); returns the tasks to await."""
        task, self._task = self._task, None
        requests, self._requests = self._requests, set()
        tasks = [*([task] if task is not None else []), *requests]
        for each in tasks:
            each.cancel()
        return tasks

    async def stop(self) -> None:
        await asyncio.gather(*self.halt(), return_exceptions=True)

    async def _run(self) -> None:
        await self._announce()
        timeout = httpx.Timeout(self.policy.timeout_ms / 1000)
        # trust_env=False: no proxy or netrc from the environment decides where events go.
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                                     verify=self._tls) as client:
            while True:
                try:
                    self._round(client)
                    await self._maybe_report()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.stats.loop_failures += 1
                    log.exception("notification round failed; trying again in 1 s")
                    await asyncio.sleep(1.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ROUND_S):
                        await self._wake.wait()
                self._wake.clear()

    async def _announce(self) -> None:
        """Record the leader.changed event (retried until it applies: this node still leads)."""
        node, term = self._leader()
        cmd = commands_pb2.Command(leader_changed=commands_pb2.LeaderChangedCmd(leader=node, term=term))
        while True:
            try:
                await self._propose(cmd)
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("could not record the leader change yet (%s); retrying", err)
                await asyncio.sleep(ANNOUNCE_RETRY_S)

    # --- one round ---

    def _round(self, client: httpx.AsyncClient) -> None:
        now, now_ms = time.monotonic(), self._clock()
        sinks = self._events.notify_sinks()
        for gone in self._sinks.keys() - {s.name for s in sinks}:
            del self._sinks[gone]
        for sink in sinks:
            state = self._sinks.setdefault(sink.name, _SinkState())
            self._prune(sink.name, state)
            room = self._concurrency - len(state.inflight)
            if room <= 0 or state.closed_until > now:
                continue
            due = self._events.pending_events(sink.name, skip=state.skip(now), limit=room, scan=SCAN)
            for event in due:
                if now_ms - event.time_ms > self.policy.horizon_ms:
                    self._expire(state, event)
                    continue
                state.inflight.add(event.id)
                request = asyncio.create_task(self._deliver(client, sink, state, event), name="notify-post")
                self._requests.add(request)
                request.add_done_callback(self._requests.discard)

    def _prune(self, name: str, state: _SinkState) -> None:
        """Forget what left the outbox (our acknowledgement applied, or the sink's was dropped)."""
        if state.done:
            state.done = {i for i in state.done if self._events.is_pending(name, i)}
        if len(state.retry) > len(state.inflight) + 64:
            state.retry = {i: v for i, v in state.retry.items() if self._events.is_pending(name, i)}

    def _expire(self, state: _SinkState, event: notify_pb2.NotifyEvent) -> None:
        state.done.add(event.id)
        state.retry.pop(event.id, None)
        state.progress.expired.append(event.id)
        self.stats.expired += 1
        log.warning("notification %s (%s) expired undelivered after the %d s retry horizon",
                    event.id, event.type, self.policy.horizon_ms // 1000)

    async def _deliver(self, client: httpx.AsyncClient, sink: notify_pb2.NotifySink, state: _SinkState,
                       event: notify_pb2.NotifyEvent) -> None:
        payload = webhook.body(event, self._cluster)
        try:
            error = await _post(client, sink.url, payload, webhook.headers(event, sink.secret, payload))
        finally:
            state.inflight.discard(event.id)
            self._wake.set()
        if not error:
            state.done.add(event.id)
            state.retry.pop(event.id, None)
            state.progress.delivered.append(event.id)
            state.streak, state.closed_until = 0, 0.0
            self.stats.delivered += 1
            return
        self._failed(sink.name, state, event, error)

    def _failed(self, name: str, state: _SinkState, event: notify_pb2.NotifyEvent, error: str) -> None:
        now = time.monotonic()
        failures = state.retry.get(event.id, (0, 0.0))[0] + 1
        state.retry[event.id] = (failures, now + self.policy.delay_ms(failures, self._rng) / 1000)
        state.streak += 1
        state.closed_until = max(state.closed_until, now + self.policy.delay_ms(state.streak, self._rng) / 1000)
        state.progress.failed_attempts += 1
        state.progress.last_error = error[:MAX_ERROR]
        state.progress.last_error_ms = self._clock()
        self.stats.failed += 1
        level = logging.WARNING if state.streak == 1 else logging.DEBUG  # once per outage, not per try
        log.log(level, "notification %s to sink %s failed (%s); retrying with backoff", event.id, name, error)

    # --- progress back through the log ---

    async def _maybe_report(self) -> None:
        waiting = sum(len(s.progress.delivered) + len(s.progress.expired) + (s.progress.failed_attempts > 0)
                      for s in self._sinks.values())
        if not waiting or (time.monotonic() - self._last_report < REPORT_S and waiting < REPORT_MAX):
            return
        self._last_report = time.monotonic()
        batch = []
        for name, state in self._sinks.items():
            progress, state.progress = state.progress, notify_pb2.NotifyProgress()
            if progress.delivered or progress.expired or progress.failed_attempts:
                progress.sink = name
                batch.append(progress)
        try:
            await self._propose(commands_pb2.Command(notify_ack=commands_pb2.NotifyAckCmd(sinks=batch)))
            self.stats.reports += 1
        except asyncio.CancelledError:
            raise
        except Exception as err:
            # Not recorded: send those events again (same ids) rather than lose the count.
            log.warning("could not record notification progress (%s); the events will be sent again", err)
            for progress in batch:
                found = self._sinks.get(progress.sink)
                if found is not None:
                    found.done.difference_update(progress.delivered)
                    found.done.difference_update(progress.expired)


async def warm_up() -> None:
    """Load now what httpx loads on first use: httpcore, h11 and certifi with its first client,
    anyio's asyncio backend when that client first closes. The notifier makes a client when its
    node starts leading and closes it when the node stops: without this, about 40 ms and 30 ms of
    imports held the event loop right after the node's first election won and first leadership
    lost (leader-transfer timelines: the next leader's first commit, the old leader's first
    append from the new one)."""
    async with httpx.AsyncClient(trust_env=False, verify=False):
        pass


async def _post(client: httpx.AsyncClient, url: str, payload: bytes, headers: dict[str, str]) -> str:
    """POST once; "" when the answer is 2xx, else what went wrong. The answer's body is not read."""
    try:
        async with client.stream("POST", url, content=payload, headers=headers) as response:
            if 200 <= response.status_code < 300:
                return ""
            return f"HTTP {response.status_code}"
    except httpx.TimeoutException:
        return "timed out"
    except httpx.HTTPError as err:
        return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__

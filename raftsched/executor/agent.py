"""The executor agent: one `Executor.Connect` stream to the leader, tasks, lease and drain.

Protocol (the leader side must match it):

* The first message of a stream carries `register` (id, slots, labels, handler names, `running`,
  `unacked`, `draining`) **and** `heartbeat` seq N, so the leader can grant the lease in its first
  answer. A non-leader aborts with FAILED_PRECONDITION and trailing metadata `raftsched-leader`;
  the agent follows a fresh hint at once and otherwise walks its address list with backoff
  (50 ms doubling to 1 s, jittered).
* The leader's first LeaderMessage (leader_id set) establishes the session. Within one
  LeaderMessage the agent applies `heartbeat_ack`, then `acked`, then `cancel`, then `assign`, so an
  ack in the same message validates the lease for the assignments beside it.
* Every `heartbeat_ms` the agent sends a heartbeat (seq increasing across streams); `started` and
  `finished` items ready in one loop iteration travel in one message. A finished result stays in
  `unacked` until the leader lists it in `acked`, and is re-sent in `register.unacked` on every new
  stream until then.
* When no leader message arrives for max(lease_ms, 2 * heartbeat_ms) the stream is presumed dead
  (a deposed leader may hold it open) and the agent reconnects.
* The leader refuses a registration out of the protocol's limits (INVALID_ARGUMENT), under an id
  the agent's certificate or token does not name (PERMISSION_DENIED), or under the id of another
  process's live session (ALREADY_EXISTS: after a quick restart, until the old stream is gone or
  silent for the lease plus the kill grace). Each registration carries the process's
  `incarnation`, so a reconnect after a network cut replaces the stream the leader still holds.
  The agent logs each refusal once (a WARNING, an ERROR for the ones that retrying cannot fix)
  and keeps trying, every REFUSED_RETRY_S after those.

Lease (SPEC §6 promise 9, see lease.py): when it runs out, every running attempt is killed and
reported FENCED; assignments arriving without a lease are refused as FENCED "lease not held". A
disconnect shorter than the lease kills nothing (promise 10).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc
import grpc.aio

from raftsched.config import ConfigError, ExecutorConfig
from raftsched.executor.handlers import HandlerFn, HandlerRegistry, default_registry
from raftsched.executor.lease import Clock, Lease
from raftsched.executor.runner import AttemptKey, AttemptRunner, finished
from raftsched.quoting import quote
from raftsched.security.tls import channel_credentials
from raftsched.security.tokens import read_token_file
from raftsched.state.validate import ValidationError, validate_executor
from raftsched.v1 import executor_pb2 as epb
from raftsched.v1 import executor_pb2_grpc as epb_grpc
from raftsched.v1 import jobs_pb2 as jpb

log = logging.getLogger("raftsched.executor")

LEADER_METADATA_KEY = "raftsched-leader"
BACKOFF_INITIAL_S = 0.05
BACKOFF_CAP_S = 0.25  # short: after a failover the lease keeps running while we look for the leader
MAX_ITEMS_PER_MESSAGE = 1000  # started + finished items in one ExecutorMessage
MAX_OUTBOX = 10_000  # a session whose outbox grows past this is stuck: drop it and re-register
# A started report alone waits this long for more to send: a task that ends meanwhile (a noop, an
# in-process handler) is reported once, started and finished in one message, which the leader
# replicates in one round instead of two (issue 19: four log rounds per job became three).
STARTED_LINGER_S = 0.002
MAX_UNACKED = 10_000  # results kept for a leader that never acknowledges; the oldest go first
MAX_MESSAGE_BYTES = 16 << 20
FORCED_FLUSH_S = 1.0
CANCEL_WAIT_S = 5.0  # after a forced stop, how long to try reporting the killed attempts
REFUSED_RETRY_S = 5.0  # between registrations the leader refused for good (bad id, wrong credentials)
# Registration refusals a retry cannot fix (the process must be given another id or credentials).
PERMANENT_REFUSALS = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
                                grpc.StatusCode.UNAUTHENTICATED})


class SessionEnded(Exception):
    """The stream to the leader ended or stalled; the agent reconnects."""


class _Outcome(NamedTuple):
    established: bool  # the leader answered (a session existed)
    leader_hint: str  # from a FAILED_PRECONDITION refusal; "" when none
    refused: bool = False  # the registration was refused for good (see PERMANENT_REFUSALS)


@dataclass(slots=True)
class _Running:
    runner: AttemptRunner
    task: asyncio.Task[None]
    slots: int


class Backoff:
    """Exponential backoff with jitter: each delay drawn from [d/2, d], d doubling up to the cap."""

    def __init__(self, rng: random.Random, *, initial: float = BACKOFF_INITIAL_S, cap: float = BACKOFF_CAP_S):
        self._rng, self._initial, self._cap = rng, initial, cap
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        return self._rng.uniform(delay / 2, delay)


class Executor:
    """An executor agent. `await run()` (or `main()` from sync code) until drained or stopped."""

    def __init__(
        self,
        config: ExecutorConfig,
        *,
        handlers: HandlerRegistry | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not config.cluster:
            raise ValueError("ExecutorConfig.cluster needs at least one address")
        self.config = config
        self.handlers = default_registry if handlers is None else handlers
        self._clock = clock
        self._lease = Lease(cap_ms=config.lease_ms, clock=clock)
        self._backoff = Backoff(rng or random.Random())
        self._running: dict[AttemptKey, _Running] = {}
        self._unacked: dict[AttemptKey, epb.TaskFinished] = {}  # insertion order = oldest first
        self._session: _Session | None = None
        self._seq = 0
        # Tells the leader a new stream comes from this same process, so it replaces a stream the
        # leader still holds open at once instead of refusing the id as taken (see register below).
        self._incarnation = secrets.token_hex(16)
        self._draining = False
        self._forced = False
        self._stop_requested = asyncio.Event()
        self._lease_renewed = asyncio.Event()
        self._changed = asyncio.Event()  # replaced on every change; see _notify
        self._leader_id = ""
        self._ran = False
        self._last_refusal = ""  # the code of the last registration refusal logged (each is logged once)

    # -- public API -------------------------------------------------------------------------

    def handler(self, name: str) -> Callable[[HandlerFn], HandlerFn]:
        """Register a handler in this executor's registry (the default one unless given)."""
        return self.handlers.handler(name)

    @property
    def running(self) -> list[AttemptKey]:
        return list(self._running)

    @property
    def unacked(self) -> list[AttemptKey]:
        return list(self._unacked)

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.established

    @property
    def leader_id(self) -> str:
        return self._leader_id

    @property
    def draining(self) -> bool:
        return self._draining

    def lease_remaining(self) -> float:
        return self._lease.remaining()

    def drain(self) -> None:
        """Take no new work, finish what runs, report it, wait (bounded) for acks, then return 0."""
        if self._draining:
            return
        self._draining = True
        self._event("draining", running=len(self._running))
        if self._session is not None:
            self._session.request_heartbeat()  # tell the leader now, not at the next tick
        self._stop_requested.set()
        self._notify()

    def stop(self) -> None:
        """Kill running tasks (reported FENCED so they are re-queued) and return 1 soon."""
        self._forced = True
        self._event("stopping", running=len(self._running))
        self._stop_requested.set()
        self._notify()

    def on_signal(self, signame: str) -> None:
        """First SIGTERM/SIGINT drains; a second one stops at once."""
        self._event("signal", signal=signame)
        if self._draining or self._forced:
            self.stop()
        else:
            self.drain()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until `predicate()` holds, re-checked on every state change; TimeoutError otherwise."""
        if not await self._wait_until(predicate, timeout):
            raise TimeoutError(f"condition not met within {timeout} s")

    async def run(self) -> int:
        """Run until drained (returns 0) or stopped (returns 1)."""
        if self._ran:
            raise RuntimeError("an Executor runs once")
        self._ran = True
        self._event("starting", slots=self.config.slots, cluster=",".join(self.config.cluster),
                    handlers=",".join(self.handlers.names()))
        background = [
            asyncio.create_task(self._connection_loop(), name="executor-connection"),
            asyncio.create_task(self._lease_watchdog(), name="executor-lease"),
        ]
        try:
            stop_wait = asyncio.create_task(self._stop_requested.wait())
            await asyncio.wait([stop_wait, *background], return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            for task in background:
                if task.done():  # a loop that should run forever ended: a bug, surface it
                    task.result()
            code = await self._shutdown()
        finally:
            await _cancel_and_wait(background)
            await self._abandon_running()
        self._event("stopped", exit_code=code, unacked=len(self._unacked))
        return code

    def main(self) -> int:
        """Run from synchronous code with SIGTERM/SIGINT draining (see _loop_factory on uvloop)."""
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(self._main_with_signals())

    # -- shutdown ---------------------------------------------------------------------------

    async def _main_with_signals(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_signal, sig.name)
        try:
            return await self.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def _shutdown(self) -> int:
        await self._wait_until(lambda: self._forced or not self._running)
        if self._forced:
            self._kill_all(jpb.ATTEMPT_END_FENCED, "executor stopped")
            await self._wait_until(lambda: not self._running, self.config.kill_grace_ms / 1000 + 1.0)
            await self._wait_until(lambda: not self._unacked, FORCED_FLUSH_S)
            return 1
        timeout = self.config.drain_ack_timeout_ms / 1000
        if not await self._wait_until(lambda: self._forced or not self._unacked, timeout):
            self._event("drain-timeout", level=logging.WARNING, unacked=len(self._unacked))
        return 1 if self._forced else 0

    async def _abandon_running(self) -> None:
        """Last resort on the way out: cancelling a runner SIGKILLs its process group."""
        await _cancel_and_wait([r.task for r in self._running.values()])

    # -- connection -------------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        addresses = list(self.config.cluster)
        index, target, redirects_in_row = 0, addresses[0], 0
        while True:
            outcome = await self._connect_once(target)
            if outcome.established:
                self._backoff.reset()
                self._last_refusal = ""
            if outcome.refused:
                await asyncio.sleep(REFUSED_RETRY_S)
                continue
            if outcome.leader_hint:
                target, redirects_in_row = outcome.leader_hint, redirects_in_row + 1
                if redirects_in_row == 1:
                    continue  # follow a fresh hint at once; hints that bounce get backoff
            else:
                redirects_in_row = 0
                if not outcome.established:
                    index = (index + 1) % len(addresses)
                    target = addresses[index]
            await asyncio.sleep(self._backoff.next_delay())

    async def _connect_once(self, target: str) -> _Outcome:
        self._event("connecting", level=logging.DEBUG, address=target)
        async with self._open_channel(target) as channel:
            call = epb_grpc.ExecutorStub(channel).Connect()
            session = _Session(self, call)
            try:
                await session.run()
            except (SessionEnded, grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
                return await self._session_ended(session, call, target, exc)
            finally:
                self._detach(session)
                call.cancel()
        raise AssertionError("session.run() returns only by raising")

    async def _session_ended(self, session: _Session, call: Any, target: str, exc: Exception) -> _Outcome:
        code = await call.code() if call.done() else None
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            hint = _metadata_value(await call.trailing_metadata(), LEADER_METADATA_KEY)
            self._event("not-leader", level=logging.INFO, address=target, leader=hint or "unknown")
            return _Outcome(False, hint)
        reason = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
        if not session.established and code in (*PERMANENT_REFUSALS, grpc.StatusCode.ALREADY_EXISTS):
            return self._refused(target, code, reason or "")
        level = logging.WARNING if session.established else logging.DEBUG
        self._event("disconnected", level=level, address=target, code=code.name if code else "-",
                    reason=reason or type(exc).__name__)
        return _Outcome(session.established, "")

    def _refused(self, target: str, code: grpc.StatusCode, reason: str) -> _Outcome:
        """The leader refused the registration: say so once per code until a session is established
        (not at every retry; the reason may change in small ways, such as how long ago)."""
        permanent = code in PERMANENT_REFUSALS
        if code.name != self._last_refusal:
            self._last_refusal = code.name
            self._event("register-refused", level=logging.ERROR if permanent else logging.WARNING,
                        address=target, code=code.name, reason=repr(reason))
        return _Outcome(False, "", refused=permanent)

    def _open_channel(self, target: str) -> grpc.aio.Channel:
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        tls = self.config.tls
        if not tls.enabled:
            return grpc.aio.insecure_channel(target, options=options)
        # Why: the executor's certificate (role executor) is its identity; a token file overrides it.
        token = read_token_file(self.config.token_file) if self.config.token_file else ""
        return grpc.aio.secure_channel(target, channel_credentials(tls, token), options=options)

    def _attach(self, session: _Session) -> epb.ExecutorMessage:
        """Make `session` current and build its first message, in one step with no await between:
        every result finished before is in `unacked` here, every one after goes to its outbox."""
        self._session = session
        register = epb.Register(
            executor_id=self.config.id,
            slots=self.config.slots,
            labels=dict(self.config.labels),
            handlers=self.handlers.names(),
            running=[key.ref() for key in self._running],
            unacked=list(self._unacked.values()),
            draining=self._draining,
            incarnation=self._incarnation,
        )
        return epb.ExecutorMessage(register=register, heartbeat=self._next_heartbeat())

    def _detach(self, session: _Session) -> None:
        if self._session is session:
            self._session = None
            self._notify()

    def _on_established(self, session: _Session, first: epb.LeaderMessage) -> None:
        self._event("connected", leader=first.leader_id or "?", running=len(self._running),
                    unacked=len(self._unacked))
        self._notify()

    def _next_heartbeat(self) -> epb.Heartbeat:
        self._seq += 1
        self._lease.heartbeat_sent(self._seq)
        return epb.Heartbeat(
            seq=self._seq, running=[key.ref() for key in self._running], draining=self._draining
        )

    # -- leader messages --------------------------------------------------------------------

    def _handle(self, msg: epb.LeaderMessage) -> None:
        """Apply one LeaderMessage atomically (no await): lease first, so assignments see it."""
        if msg.leader_id:
            self._leader_id = msg.leader_id
        if msg.HasField("heartbeat_ack") and self._lease.maybe_extend(
            msg.heartbeat_ack.seq, msg.heartbeat_ack.lease_ms
        ):
            self._lease_renewed.set()
            self._renew_guards()
        for ref in msg.acked:
            self._unacked.pop(AttemptKey(ref.job_id, ref.attempt), None)
        for ref in msg.cancel:
            self._cancel(AttemptKey(ref.job_id, ref.attempt))
        for assignment in msg.assign:
            self._accept(assignment)
        self._notify()

    def _renew_guards(self) -> None:
        remaining = self._lease.remaining()
        for entry in self._running.values():
            entry.runner.renew_guard(remaining)

    def _cancel(self, key: AttemptKey) -> None:
        entry = self._running.get(key)
        if entry is None:
            self._event("cancel-unknown", key, level=logging.DEBUG)
            return
        self._event("cancel", key)
        entry.runner.kill(jpb.ATTEMPT_END_CANCELLED, "cancelled by the leader")

    def _accept(self, a: epb.Assignment) -> None:
        key = AttemptKey(a.job_id, a.attempt)
        if key in self._running or key in self._unacked:
            self._event("assign-duplicate", key, level=logging.DEBUG)
            return
        need = a.spec.slots or 1
        if self._draining or self._forced:
            self._refuse(key, jpb.ATTEMPT_END_FENCED, "executor draining")
        elif not self._lease.held():
            self._refuse(key, jpb.ATTEMPT_END_FENCED, "lease not held")
        elif self._used_slots() + need > self.config.slots:
            self._refuse(key, jpb.ATTEMPT_END_FAILED, "no free slots")
        else:
            self._start(key, a.spec, need)

    def _used_slots(self) -> int:
        return sum(entry.slots for entry in self._running.values())

    def _refuse(self, key: AttemptKey, end: jpb.AttemptEnd, error: str) -> None:
        self._event("refused", key, level=logging.WARNING, error=error)
        self._record(finished(key, end, exit_code=-1, error=error))

    # -- attempts ---------------------------------------------------------------------------

    def _start(self, key: AttemptKey, spec: jpb.JobSpec, slots: int) -> None:
        runner = AttemptRunner(
            key,
            spec,
            handlers=self.handlers,
            tail_bytes=self.config.output_tail_bytes,
            kill_grace_s=self.config.kill_grace_ms / 1000,
            on_started=lambda: self._report_started(key),
            lease_remaining=self._lease.remaining if self.config.guard_tasks else None,
            executor_id=self.config.id,
        )
        what = " ".join(spec.command)[:200] if spec.command else f"handler={spec.handler}"
        self._event("assigned", key, slots=slots, run=what)
        task = asyncio.create_task(self._run_attempt(key, runner), name=f"attempt-{key.token}")
        self._running[key] = _Running(runner, task, slots)

    async def _run_attempt(self, key: AttemptKey, runner: AttemptRunner) -> None:
        try:
            result = await runner.run()
        except Exception as exc:  # a bug in the runner must still produce a result for the leader
            log.exception("executor=%s job=%s attempt=%d runner failed", self.config.id, *key)
            result = finished(key, jpb.ATTEMPT_END_FAILED, exit_code=-1, error=f"executor error: {exc!r}")
        finally:
            self._running.pop(key, None)
        self._record(result)

    def _report_started(self, key: AttemptKey) -> None:
        self._event("started", key, pid=self._running[key].runner.pid if key in self._running else None)
        if self._session is not None:
            self._session.push_started(epb.TaskStarted(job_id=key.job_id, attempt=key.attempt))

    def _record(self, result: epb.TaskFinished) -> None:
        key = AttemptKey(result.job_id, result.attempt)
        self._event("finished", key, end=jpb.AttemptEnd.Name(result.end), exit_code=result.exit_code,
                    error=result.error[:200] or "-")
        self._unacked[key] = result
        while len(self._unacked) > MAX_UNACKED:
            dropped = next(iter(self._unacked))
            del self._unacked[dropped]
            self._event("unacked-dropped", dropped, level=logging.ERROR)
        if self._session is not None:
            self._session.push_finished(result)
        self._notify()

    def _kill_all(self, end: jpb.AttemptEnd, error: str) -> None:
        for key, entry in list(self._running.items()):
            self._event("kill", key, level=logging.WARNING, reason=error)
            entry.runner.kill(end, error)

    async def _lease_watchdog(self) -> None:
        """Kill everything the moment the lease runs out (promise 9)."""
        while True:
            remaining = self._lease.remaining()
            if remaining > 0:
                await asyncio.sleep(remaining + 0.001)  # an ack may have moved it: re-check
                continue
            if self._running:
                self._event("lease-expired", level=logging.WARNING, running=len(self._running))
                self._kill_all(jpb.ATTEMPT_END_FENCED, "lease expired")
            self._lease_renewed.clear()
            await self._lease_renewed.wait()

    # -- helpers ----------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every `_wait_until`: each waiter holds the old event, which stays set."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            return predicate()
        return True

    def _event(self, event: str, key: AttemptKey | None = None, *, level: int = logging.INFO,
               **fields: object) -> None:
        """One log line per event, always with the executor id, and the job and attempt if any."""
        if not log.isEnabledFor(level):
            return
        parts = [f"executor={self.config.id}", f"event={event}"]
        if key is not None:
            parts += [f"job={key.job_id}", f"attempt={key.attempt}"]
        parts += [f"{name}={value}" for name, value in fields.items()]
        log.log(level, " ".join(parts))


class _Session:
    """One Connect stream: its outbox and its reader, writer and heartbeat loops."""

    def __init__(self, executor: Executor, call: Any) -> None:
        self._ex = executor
        self._call = call
        self._started: list[epb.TaskStarted] = []
        self._finished: list[epb.TaskFinished] = []
        self._heartbeat_due = False
        self._wake = asyncio.Event()
        self._last_rx = executor._clock()
        self._stall_s = max(executor.config.lease_ms, 2 * executor.config.heartbeat_ms) / 1000
        self.established = False

    def push_started(self, item: epb.TaskStarted) -> None:
        self._started.append(item)
        self._wake.set()

    def push_finished(self, result: epb.TaskFinished) -> None:
        self._finished.append(result)
        self._wake.set()

    def request_heartbeat(self) -> None:
        self._heartbeat_due = True
        self._wake.set()

    async def run(self) -> None:
        """Register, wait for the leader's answer, then pump both ways until something breaks."""
        await self._call.write(self._ex._attach(self))
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow our own cancellation
            # when the read completes at the same moment, and the session would outlive stop().
            async with asyncio.timeout(self._stall_s):
                first = await self._call.read()
        except TimeoutError as exc:
            raise SessionEnded(f"no answer to register within {self._stall_s:.1f} s") from exc
        if first is grpc.aio.EOF:
            raise SessionEnded("stream closed before the leader answered")
        self.established = True
        self._last_rx = self._ex._clock()
        self._ex._on_established(self, first)
        self._ex._handle(first)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read_loop())
                tg.create_task(self._write_loop())
                tg.create_task(self._heartbeat_loop())
        except BaseExceptionGroup as group:
            raise _first_leaf(group) from None

    async def _read_loop(self) -> None:
        while True:
            msg = await self._call.read()
            if msg is grpc.aio.EOF:
                raise SessionEnded("the leader closed the stream")
            self._last_rx = self._ex._clock()
            self._ex._handle(msg)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._started and not self._finished and not self._heartbeat_due:
                try:
                    async with asyncio.timeout(STARTED_LINGER_S):
                        await self._wake.wait()  # a result, a heartbeat or another start
                except TimeoutError:
                    pass
                self._wake.clear()
            msg = self._take_batch()
            if msg is not None:
                await self._call.write(msg)

    def _take_batch(self) -> epb.ExecutorMessage | None:
        """Everything ready now, in one message (bounded; the rest wakes the writer again)."""
        if len(self._started) + len(self._finished) > MAX_OUTBOX:
            raise SessionEnded("outbox overflow: the stream is not draining")
        msg = epb.ExecutorMessage()
        if self._heartbeat_due:
            self._heartbeat_due = False
            msg.heartbeat.CopyFrom(self._ex._next_heartbeat())
        room = MAX_ITEMS_PER_MESSAGE
        msg.started.extend(self._started[:room])
        del self._started[:room]
        room -= len(msg.started)
        msg.finished.extend(self._finished[:room])
        del self._finished[:room]
        if self._started or self._finished:
            self._wake.set()
        return msg if msg.ByteSize() else None

    async def _heartbeat_loop(self) -> None:
        interval = self._ex.config.heartbeat_ms / 1000
        while True:
            await asyncio.sleep(interval)
            silent = self._ex._clock() - self._last_rx
            if silent > self._stall_s:
                raise SessionEnded(f"no message from the leader for {silent:.1f} s")
            self.request_heartbeat()


async def _cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and reap `tasks`, bounded: a task that swallows cancellation must not hang shutdown."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
    for task in pending:
        log.error("task %s did not stop within %.0f s of cancellation", task.get_name(), CANCEL_WAIT_S)


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _metadata_value(metadata: Any, key: str) -> str:
    for k, v in metadata or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else str(v)
    return ""


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The stock asyncio loop, deliberately not uvloop.

    uvloop spawns children with a plain fork(); in a process where grpc threads are busy, grpc's
    fork handlers then crash the child before exec: measured here (grpcio 1.85, uvloop 0.23),
    4-10 % of spawned tasks died of SIGSEGV. The stock loop spawns through _posixsubprocess
    (vfork) and lost none in the same test. An executor sends a few messages a second, so uvloop
    buys nothing here. (GRPC_ENABLE_FORK_SUPPORT=false set before grpc is imported also avoids it.)
    """
    return None


async def run_executor(config: ExecutorConfig, *, handlers: HandlerRegistry | None = None) -> int:
    """Run an executor until drained (0) or stopped (1); the caller owns signal handling."""
    return await Executor(config, handlers=handlers).run()


def main(config: ExecutorConfig, *, handlers: HandlerRegistry | None = None) -> int:
    """Run an executor from synchronous code (the CLI) with SIGTERM/SIGINT draining."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    if not config.tls.enabled:
        logging.getLogger("raftsched.executor").warning("executor %s: insecure mode (no TLS)", config.id)
    executor = Executor(config, handlers=handlers)
    check_registration(executor)
    return executor.main()


def check_registration(executor: Executor) -> None:
    """Raise ConfigError when the leader would refuse what this executor registers with (its id,
    slots, labels, handler names: raftsched.state.validate), so that it fails at start, clearly."""
    config = executor.config
    try:
        validate_executor(config.id, config.slots, config.labels, executor.handlers.names())
    except ValidationError as err:
        raise ConfigError(f"executor {quote(config.id)} cannot register: {err}") from None

"""The client workload: concurrent clients submitting, reading and cancelling jobs at a set rate.

Each client is one Jepsen process doing one operation at a time, every operation bounded by
`op_timeout`. Outcomes follow SPEC §8: `ok`; `fail` when the call certainly had no effect
(INVALID_ARGUMENT, NOT_FOUND on cancel, ...); `info` when it may have (a timeout, UNAVAILABLE,
a cut connection). A process whose operation ended in `info` may still have it in flight, so the
client continues as a new process (id + number of clients), as Jepsen does.

A submit that ended in `info` is retried later with the same idempotency key, as a new invoke.
With `schedules` > 0, that many recurring schedules are created before the clients start (f
`create-schedule`), each firing the same ledger-writing task every `schedule_every` seconds with
its own catch-up policy (all, skip, once in turn); the runner pauses them after healing (f
`pause-schedule`) and collects them for checkers/schedules.py. These ops use process "schedules".
The jobs run a tiny shell command that appends "job attempt executor wall_ns" to the raw ledger
and sleeps 0-1 s, so that every execution, duplicates included, is visible afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc.aio
from cluster import Cluster
from history import History

from raftsched.client import AsyncClient, ClientError
from raftsched.v1 import jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

# The task: one ledger line "job attempt executor monotonic_ns" at start, every ~100 ms while it
# runs and at its end, so a checker sees each execution's interval (duplicates included). Small
# O_APPEND writes do not interleave between processes. It sleeps with select(), not time.sleep():
# under the clock nemesis it inherits libfaketime, whose clock_nanosleep fails (cluster.FAKETIME_SHIM).
TASK_SCRIPT = """\
import os, select, sys, time
path, duration = sys.argv[1], float(sys.argv[2])
env = os.environ
tag = "%s %s %s " % (env.get("RAFTSCHED_JOB_ID", "?"), env.get("RAFTSCHED_ATTEMPT", "0"),
                     env.get("JEPSEN_EXECUTOR_ID", "?"))
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
end = time.monotonic() + duration
while True:
    os.write(fd, (tag + str(time.monotonic_ns()) + "\\n").encode())
    left = end - time.monotonic()
    if left <= 0:
        break
    select.select([], [], [], min(0.1, left))
sys.stdout.write("ran " + tag.strip() + "\\n")  # the recorded outcome must carry its own attempt's line
"""
FAIL_CODES = frozenset({"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "ALREADY_EXISTS",
                        "OUT_OF_RANGE", "PERMISSION_DENIED", "UNAUTHENTICATED", "UNIMPLEMENTED"})
# How far a client's schedule may fall behind before it skips starts. After a stall (a leader
# kill, a slow quorum) clients catch up on this much of their schedule at once, as a backlog of
# real clients would: 3 s left make chaos at 75-87 ops/s of the 120 asked, with its faults every
# 5 s stalling the cluster for about a third of the run.
MAX_DEBT_S = 10.0
RECENT = 24  # reads and cancels favour the most recently acknowledged jobs
MAX_RETRY_KEYS = 1000
SCHEDULES_PROCESS = "schedules"  # the history process of schedule creation and pausing
# (catch-up, overlap) of schedule i, in turn: `all` must fire every time, `skip` records late times
# as missed, `once` folds them into one run and skips times whose previous job still runs;
# `buffer-one` fires the newest waiting time when the running job ends, `cancel-other` cancels it.
SCHEDULE_POLICIES = (("all", "allow"), ("skip", "allow"), ("once", "skip"), ("skip", "buffer-one"),
                     ("all", "cancel-other"))
SCHEDULED_TASK_SECONDS = 0.2
OVERLAPPING_TASK_SECONDS = 1.5  # for buffer-one and cancel-other: longer than the interval, so they act
LONG_JOB_SECONDS = (4.0, 8.0)  # longer than the lease (3 s): still running when an executor freezes
SCHEDULE_OP_DEADLINE = 30.0  # seconds to keep retrying one schedule's creation or pause


def state_name(state: int) -> str:
    return jobs_pb2.JobState.Name(state).removeprefix("JOB_STATE_")  # type: ignore[arg-type]


def current_attempt(job: jobs_pb2.Job) -> int:
    return max((a.number for a in job.attempts), default=0)


class ProxyAwareClient(AsyncClient):
    """AsyncClient that reaches nodes directly: a leader hint names a node's peer address (one of
    the node-to-node proxies), which is mapped back to the node's own port."""

    def __init__(self, cluster: Cluster, addresses: list[str], **kw: Any) -> None:
        super().__init__(addresses, **kw)
        self._cluster = cluster

    def _channel(self, address: str) -> grpc.aio.Channel:
        return super()._channel(self._cluster.real_address(address))


@dataclass
class WorkloadConfig:
    rate: float = 50.0
    clients: int = 8
    op_timeout: float = 5.0
    stale_reads: bool = False
    stale_fraction: float = 0.3
    watchers: int = 2
    job_timeout: float = 10.0  # per attempt; 0: none (a lost assignment then hangs the job)
    schedules: int = 0  # recurring schedules created at the start (0: none)
    schedule_every: float = 1.0  # their interval in seconds
    long_jobs: float = 0.0  # fraction of jobs that run LONG_JOB_SECONDS (running when cancelled or frozen)
    dependencies: float = 0.0  # fraction of new jobs that depend on 1-2 recently acknowledged jobs
    noop_jobs: float = 0.0  # fraction of jobs run by the executors' built-in noop handler (no process, no ledger)


@dataclass
class Workload:
    cluster: Cluster
    history: History
    config: WorkloadConfig
    rng: random.Random
    ledger: Path
    watch_log: Path
    stale_targets: Callable[[], list[str]] = list  # nodes worth a stale read now (cut off ones)
    acked: dict[str, str] = field(default_factory=dict)  # key -> job id, from ok submits
    ids: list[str] = field(default_factory=list)  # acknowledged job ids, in ack order
    specs: dict[str, jobs_pb2.JobSpec] = field(default_factory=dict)  # key -> the spec sent
    retry_keys: list[str] = field(default_factory=list)  # submits that ended in info
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _seq: int = 0
    watch_results: list[dict[str, Any]] = field(default_factory=list)
    schedule_names: list[str] = field(default_factory=list)  # schedules that exist (created ok)
    schedule_pauses: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> wall ms of the pause

    # --- schedules (before the clients start, and after healing) ---------------------------

    def schedule_spec(self, i: int) -> scheduler_pb2.ScheduleSpec:
        catchup, overlap = SCHEDULE_POLICIES[i % len(SCHEDULE_POLICIES)]
        name = f"chaos-s{i}-{catchup}" if i < 3 else f"chaos-s{i}-{overlap}"
        seconds = OVERLAPPING_TASK_SECONDS if overlap in ("buffer-one", "cancel-other") else SCHEDULED_TASK_SECONDS
        template = jobs_pb2.JobSpec(
            name=f"sched-{name}",
            command=[sys.executable, "-I", "-S", "-c", TASK_SCRIPT, str(self.ledger), f"{seconds:.3f}"],
            max_attempts=5,
            backoff=jobs_pb2.RetryBackoff(initial_ms=200, max_ms=2000, multiplier=2.0),
            timeout_ms=int(self.config.job_timeout * 1000),
        )
        return scheduler_pb2.ScheduleSpec(
            name=name, every_ms=int(self.config.schedule_every * 1000), template=template,
            catchup=getattr(scheduler_pb2, f"CATCHUP_POLICY_{catchup.upper()}"),
            overlap=getattr(scheduler_pb2, f"OVERLAP_POLICY_{overlap.upper().replace('-', '_')}"),
        )

    async def create_schedules(self) -> None:
        """Create config.schedules schedules, each retried (bounded) until it exists."""
        async with ProxyAwareClient(self.cluster, self.cluster.addresses, timeout=self.config.op_timeout) as client:
            for i in range(self.config.schedules):
                spec = self.schedule_spec(i)
                value = {"name": spec.name, "every_ms": spec.every_ms,
                         "catchup": scheduler_pb2.CatchupPolicy.Name(spec.catchup).removeprefix("CATCHUP_POLICY_"),
                         "overlap": scheduler_pb2.OverlapPolicy.Name(spec.overlap).removeprefix("OVERLAP_POLICY_")}
                deadline = time.monotonic() + SCHEDULE_OP_DEADLINE
                while time.monotonic() < deadline:
                    self.history.append(SCHEDULES_PROCESS, "invoke", "create-schedule", value)
                    outcome, resp = await self._call(client.create_schedule(spec))
                    if outcome == "ok":
                        self.history.append(SCHEDULES_PROCESS, "ok", "create-schedule",
                                            {"name": spec.name, "created_ms": resp.created_ms})
                        self.schedule_names.append(spec.name)
                        break
                    self.history.append(SCHEDULES_PROCESS, outcome, "create-schedule",
                                        {"name": spec.name, "error": resp})
                    if resp == "ALREADY_EXISTS":  # an earlier attempt that ended in info did create it
                        self.schedule_names.append(spec.name)
                        break
                    await asyncio.sleep(0.5)

    async def pause_schedules(self) -> None:
        """Pause every schedule (retried, bounded); the wall-clock ms of each pause's invoke and ok."""
        async with ProxyAwareClient(self.cluster, self.cluster.addresses, timeout=self.config.op_timeout) as client:
            for name in self.schedule_names:
                deadline = time.monotonic() + SCHEDULE_OP_DEADLINE
                invoked = time.time_ns() // 1_000_000  # the first try's: a try that ended in info may have paused it
                while time.monotonic() < deadline:
                    self.history.append(SCHEDULES_PROCESS, "invoke", "pause-schedule", {"name": name})
                    outcome, resp = await self._call(client.pause_schedule(name, "chaos run ended"))
                    if outcome == "ok":
                        done = time.time_ns() // 1_000_000
                        self.schedule_pauses[name] = {"invoke_ms": invoked, "ok_ms": done}
                        self.history.append(SCHEDULES_PROCESS, "ok", "pause-schedule",
                                            {"name": name, "paused": resp.paused, "wall_ms": done})
                        break
                    self.history.append(SCHEDULES_PROCESS, outcome, "pause-schedule", {"name": name, "error": resp})
                    await asyncio.sleep(0.5)

    async def run(self) -> None:
        """Run the clients and watchers until stop() is called, then let the last ops finish."""
        tasks = [asyncio.create_task(self._client(i)) for i in range(self.config.clients)]
        tasks += [asyncio.create_task(self._watcher(i)) for i in range(self.config.watchers)]
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                print(f"workload task crashed: {result!r}", file=sys.stderr, flush=True)
                raise result

    def stop(self) -> None:
        self._stop.set()

    # --- one client ------------------------------------------------------------------------

    async def _client(self, i: int) -> None:
        rng = random.Random(self.rng.random())
        process = i
        per_client = self.config.rate / max(1, self.config.clients)
        client = ProxyAwareClient(self.cluster, self.cluster.addresses, timeout=self.config.op_timeout)
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                outcome = await self._one_op(client, process, rng)
                if outcome == "info":
                    process += self.config.clients
                # Starts follow a Poisson schedule of their own, not the end of the last op, so the
                # rate holds while ops take time; a client behind by more than MAX_DEBT_S forgets
                # the rest (a bounded burst after a partition).
                now = time.monotonic()
                next_at = max(next_at + rng.expovariate(per_client), now - MAX_DEBT_S)
                gap = next_at - now
                if gap > 0:  # the whole gap: a cap here (it was 2 s) ran 96 clients at 48 ops/s whatever --rate
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), gap)
        finally:
            await client.close()

    async def _one_op(self, client: AsyncClient, process: int, rng: random.Random) -> str:
        r = rng.random()
        if self.retry_keys and r < 0.15:
            return await self._submit(client, process, self.retry_keys.pop(rng.randrange(len(self.retry_keys))))
        if r < 0.35 or not self.ids:
            return await self._submit(client, process, self._new_key(process, rng))
        if r < 0.88:
            return await self._get(client, process, self._pick_id(rng), rng)
        if r < 0.95:
            return await self._cancel(client, process, self._pick_id(rng))
        if r < 0.98:
            return await self._get(client, process, f"missing-{rng.randrange(1 << 30)}", rng)
        return await self._cancel(client, process, f"missing-{rng.randrange(1 << 30)}")

    def _new_key(self, process: int, rng: random.Random) -> str:
        self._seq += 1
        key = f"k{self._seq}"
        if self.config.long_jobs and rng.random() < self.config.long_jobs:
            sleep = rng.uniform(*LONG_JOB_SECONDS)
        else:
            sleep = rng.uniform(0.0, 1.0) ** 2  # 0-1 s, mostly short
        self.specs[key] = jobs_pb2.JobSpec(
            name=f"chaos-{key}",
            command=[sys.executable, "-I", "-S", "-c", TASK_SCRIPT, str(self.ledger), f"{sleep:.3f}"],
            payload=f"{sleep:.3f}".encode(),
            max_attempts=5,
            backoff=jobs_pb2.RetryBackoff(initial_ms=200, max_ms=2000, multiplier=2.0),
            timeout_ms=int(self.config.job_timeout * 1000),
            idempotency_key=key,
        )
        if self.config.noop_jobs and rng.random() < self.config.noop_jobs:
            del self.specs[key].command[:]
            self.specs[key].handler = "noop"  # cheap: lets a heavy run's executors keep up
        if self.config.dependencies and self.ids and rng.random() < self.config.dependencies:
            recent = self.ids[-RECENT:]
            self.specs[key].depends_on.extend(rng.sample(recent, min(len(recent), rng.randint(1, 2))))
        return key

    def _pick_id(self, rng: random.Random) -> str:
        if rng.random() < 0.7:
            return rng.choice(self.ids[-RECENT:])
        return rng.choice(self.ids)

    async def _call(self, coro: Any) -> tuple[str, Any]:
        """("ok", response) or (type, error code) for a call, bounded by the op timeout."""
        try:
            return "ok", await asyncio.wait_for(coro, self.config.op_timeout + 1.0)
        except ClientError as e:
            return ("fail" if e.code in FAIL_CODES else "info"), e.code
        except TimeoutError:
            return "info", "TIMEOUT"
        except grpc.aio.AioRpcError as e:
            return "info", e.code().name

    async def _submit(self, client: AsyncClient, process: int, key: str) -> str:
        self.history.append(process, "invoke", "submit", {"key": key})
        outcome, resp = await self._call(client.submit_job(self.specs[key]))
        if outcome == "ok":
            job_id = resp.job.id
            if key not in self.acked:
                self.acked[key] = job_id
                self.ids.append(job_id)
            self.history.append(process, "ok", "submit", {"key": key, "id": job_id})
        else:
            self.history.append(process, outcome, "submit", {"key": key, "error": resp})
            if outcome == "info" and len(self.retry_keys) < MAX_RETRY_KEYS:
                self.retry_keys.append(key)
        return outcome

    async def _get(self, client: AsyncClient, process: int, job_id: str, rng: random.Random) -> str:
        stale_node = self._stale_node(rng) if self.config.stale_reads else None
        value: dict[str, Any] = {"id": job_id, "stale": stale_node is not None}
        if stale_node is not None:
            value["node"] = stale_node
        self.history.append(process, "invoke", "get", value)
        if stale_node is None:
            outcome, resp = await self._call(client.get_job(job_id))
        else:
            address = self.cluster.nodes[stale_node].address
            async with ProxyAwareClient(self.cluster, [address], timeout=2.0) as one:
                outcome, resp = await self._call(one.get_job(job_id, stale=True, timeout=2.0))
        if outcome == "ok":
            self.history.append(process, "ok", "get", {"id": job_id, "state": state_name(resp.state),
                                                       "attempt": current_attempt(resp)})
        elif resp == "NOT_FOUND":
            self.history.append(process, "ok", "get", {"id": job_id, "state": "NOT_FOUND", "attempt": 0})
            outcome = "ok"
        else:
            self.history.append(process, outcome, "get", {"id": job_id, "error": resp})
        return outcome

    def _stale_node(self, rng: random.Random) -> str | None:
        if rng.random() >= self.config.stale_fraction:
            return None
        up = [n for n in self.cluster.node_ids
              if self.cluster.nodes[n].proc.alive() and not self.cluster.nodes[n].proc.paused]
        preferred = [n for n in self.stale_targets() if n in up]
        return rng.choice(preferred or up) if up else None

    async def _cancel(self, client: AsyncClient, process: int, job_id: str) -> str:
        self.history.append(process, "invoke", "cancel", {"id": job_id})
        outcome, resp = await self._call(client.cancel_job(job_id, "chaos workload"))
        if outcome == "ok":
            self.history.append(process, "ok", "cancel", {"id": job_id, "state": state_name(resp.state),
                                                          "attempt": current_attempt(resp)})
        else:
            self.history.append(process, outcome, "cancel", {"id": job_id, "error": resp})
        return outcome

    # --- watchers (outside the history; their own log) -------------------------------------

    async def _watcher(self, i: int) -> None:
        rng = random.Random(self.rng.random())
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), rng.uniform(1.0, 4.0))
                return
            except TimeoutError:
                pass
            if self.ids:
                await self._watch_one(rng.choice(self.ids[-RECENT:]), rng)

    async def _watch_one(self, job_id: str, rng: random.Random) -> None:
        """Follow one job's changes for a while from a random node; record what was seen and
        whether it went back. (Direct stub: AsyncClient.watch_job mixes read() and iteration on
        one call, which grpc.aio refuses once a second message arrives.)"""
        nid = rng.choice(self.cluster.node_ids)
        stub = scheduler_pb2_grpc.SchedulerStub(self.cluster.channel(self.cluster.nodes[nid].address))
        seen: list[tuple[int, str]] = []
        error = ""
        call = stub.WatchJob(scheduler_pb2.WatchJobRequest(id=job_id), timeout=8.0)
        try:
            async for job in call:
                seen.append((current_attempt(job), state_name(job.state)))
        except grpc.aio.AioRpcError as e:
            error = e.code().name
        finally:
            call.cancel()
        result = {"time": self.history.now(), "id": job_id, "node": nid, "seen": seen, "error": error,
                  "backwards": _went_backwards(seen)}
        self.watch_results.append(result)
        with self.watch_log.open("a") as f:
            f.write(json.dumps(result) + "\n")


_RANK = {"PENDING": 0, "QUEUED": 1, "ASSIGNED": 2, "RUNNING": 3, "SUCCEEDED": 4, "FAILED": 4,
         "CANCELLED": 4, "SKIPPED": 4}


def _went_backwards(seen: list[tuple[int, str]]) -> bool:
    """An attempt number that shrinks, anything after a terminal state, or an earlier state
    within one attempt (QUEUED excepted: a retry re-queues before its next attempt exists)."""
    last: tuple[int, int] | None = None
    for attempt, state in seen:
        rank = (attempt, _RANK.get(state, 0))
        if last is not None:
            if last[1] == 4 and rank != last:
                return True
            if rank[0] < last[0] or (rank < last and state != "QUEUED"):
                return True
        last = rank
    return False

"""raftsched under test: 3 nodes on loopback (default settings: fsync on, heartbeat 100 ms, election
1000 ms), its own AsyncClient as the load generator's client, and the phases only it has (batch
submits, end-to-end with executors, executor loss)."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from benchlib.loadgen import LoadResult, Op, run_load
from benchlib.procs import HOST, Proc, ProcessSet, free_ports
from benchlib.systems import ManagedMembers
from raftsched.client.aio import AsyncClient
from raftsched.v1 import admin_pb2, jobs_pb2

J = jobs_pb2
ACTIVE_STATES = (J.JOB_STATE_PENDING, J.JOB_STATE_QUEUED, J.JOB_STATE_ASSIGNED, J.JOB_STATE_RUNNING)


def raftsched_command() -> list[str]:
    script = Path(sys.executable).with_name("raftsched")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from raftsched.cli.main import main; sys.exit(main())"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTSCHED_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class RaftschedCluster(ManagedMembers):
    member_kind = "raftsched node"
    name = "raftsched"

    def __init__(self, root: Path, procs: ProcessSet, label: str, size: int = 3) -> None:
        self.root, self.procs, self.label = root, procs, label
        self.members = [f"n{i + 1}" for i in range(size)]
        self.port = dict(zip(self.members, free_ports(size), strict=True))
        self.proc: dict[str, Proc] = {}
        self.executors: dict[str, Proc] = {}
        self._clients: list[AsyncClient] = []
        self._keys = itertools.count()
        self._run = uuid.uuid4().hex[:8]

    def address(self, member: str) -> str:
        return f"{HOST}:{self.port[member]}"

    @property
    def addresses(self) -> list[str]:
        return [self.address(m) for m in self.members]

    def client(self, *, timeout: float = 30.0, attempt_timeout: float = 1.0) -> AsyncClient:
        client = AsyncClient(self.addresses, timeout=timeout, attempt_timeout=attempt_timeout)
        self._clients.append(client)
        return client

    def _argv(self, member: str) -> list[str]:
        peers = ",".join(f"{m}={self.address(m)}" for m in self.members)
        data = self.root / f"raftsched-{self.label}" / member
        return [*raftsched_command(), "node", "--id", member, "--listen", self.address(member),
                "--data-dir", str(data), "--peers", peers, "--log-level", "warning"]

    async def start(self) -> None:
        for m in self.members:
            log = self.root / "logs" / f"raftsched-{self.label}-{m}.log"
            self.proc[m] = self.procs.add(Proc(f"{self.label}-{m}", self._argv(m), log, env=_env()))
            self.proc[m].start()
        await self.leader(timeout=60)

    async def _local_status(self, member: str) -> admin_pb2.NodeStatus | None:
        return await self._local_status_at(self.address(member))

    async def _local_status_at(self, address: str) -> admin_pb2.NodeStatus | None:
        client = AsyncClient([address], timeout=0.5)
        try:
            nodes = (await client.status(local_only=True, timeout=0.5)).nodes
            return nodes[0] if nodes else None
        except Exception:
            return None
        finally:
            await client.close()

    async def _statuses(self) -> dict[str, admin_pb2.NodeStatus]:
        live = [m for m in self.members if self.proc[m].alive()]
        found = await asyncio.gather(*(self._local_status(m) for m in live))
        return {m: s for m, s in zip(live, found, strict=True) if s is not None}

    async def leader(self, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for member, status in (await self._statuses()).items():
                if status.role == admin_pb2.ROLE_LEADER:
                    return member
            await asyncio.sleep(0.05)
        raise RuntimeError("raftsched has no leader:\n" + self.proc[self.members[0]].log_tail())

    def spec(self, handler: str = "noop", payload: bytes = b"", **extra: object) -> jobs_pb2.JobSpec:
        """A job with its own idempotency key, as a careful client sends it."""
        key = f"bench-{self._run}-{next(self._keys)}"
        return J.JobSpec(handler=handler, payload=payload, idempotency_key=key, **extra)  # type: ignore[arg-type]

    async def write_op(self) -> Op:
        client = self.client()

        async def op(worker: int) -> object:
            return await client.submit_job(self.spec())

        return op

    def stream_op(self) -> Op:
        """One submit over the client's SubmitJobStream (every worker shares the one stream)."""
        client = self.client()

        async def op(worker: int) -> object:
            return await client.submit_job_streamed(self.spec())

        return op

    def batch_op(self, size: int) -> Op:
        client = self.client()

        async def op(worker: int) -> object:
            response = await client.submit_jobs([self.spec() for _ in range(size)])
            refused = [r.error for r in response.results if r.error]
            if refused:
                raise RuntimeError(f"{len(refused)} of {size} refused: {refused[0]}")
            return response

        return op

    async def _caught_up(self, member: str) -> bool:
        statuses = await self._statuses()
        mine = statuses.get(member)
        leader = next((s for s in statuses.values() if s.role == admin_pb2.ROLE_LEADER), None)
        return bool(mine and leader and mine.leader and mine.applied_index >= leader.commit_index)

    async def close(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.close()

    # --- executors ---------------------------------------------------------------------------

    def start_executor(self, eid: str, slots: int = 4) -> Proc:
        proc = self.executors.get(eid)
        if proc is None:
            argv = [*raftsched_command(), "executor", "--cluster", ",".join(self.addresses), "--id", eid,
                    "--slots", str(slots), "--log-level", "warning"]
            log = self.root / "logs" / f"raftsched-{self.label}-{eid}.log"
            proc = self.executors[eid] = self.procs.add(Proc(f"{self.label}-{eid}", argv, log, env=_env()))
        proc.start()
        return proc

    async def wait_executors(self, ids: list[str], timeout: float = 30) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = (await client.list_executors()).executors
            connected = {e.id for e in listed if e.state == J.EXECUTOR_STATE_CONNECTED}
            if connected >= set(ids):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"executors {ids} did not connect in {timeout:.0f} s")

    async def active_jobs(self, client: AsyncClient) -> bool:
        """True while any job is pending, queued, assigned or running (the leader's exact counts)."""
        counts = (await self.job_counts(client))
        return any(counts.get(J.JobState.Name(s).removeprefix("JOB_STATE_"), 0) for s in ACTIVE_STATES)

    async def count_jobs(self, client: AsyncClient, state: int) -> int:
        return (await self.job_counts(client)).get(J.JobState.Name(state).removeprefix("JOB_STATE_"), 0)

    async def job_counts(self, client: AsyncClient) -> dict[str, int]:
        for node in (await client.status()).nodes:
            if node.role == admin_pb2.ROLE_LEADER:
                return dict(node.job_counts)
        raise RuntimeError("no leader to count jobs")


async def measure_batches(cluster: RaftschedCluster, batch: int, concurrency: int, duration: float,
                          warmup: float) -> dict[str, float | int]:
    result: LoadResult = await run_load(cluster.batch_op(batch), concurrency, duration, warmup=warmup)
    out = result.summary()
    out["batch"] = batch
    out["jobs_per_s"] = round(result.throughput * batch, 1)
    return out


async def measure_stream(cluster: RaftschedCluster, concurrency: int, duration: float,
                         warmup: float) -> dict[str, float | int]:
    """Acknowledged SubmitJobStream submits per second with `concurrency` in flight on one stream."""
    return (await run_load(cluster.stream_op(), concurrency, duration, warmup=warmup)).summary()


async def measure_lone_submits(cluster: RaftschedCluster, duration: float, warmup: float) -> dict[str, float | int]:
    """SubmitJob with one request in flight (noop jobs: with executors connected, they run at once)."""
    return (await run_load(await cluster.write_op(), 1, duration, warmup=warmup)).summary()


async def transfer_trial(cluster: RaftschedCluster, concurrency: int, steady: float) -> float:
    """Writes with `concurrency` in flight; TransferLeader to a follower under them. Returns the
    longest gap (ms) between two acknowledged writes around the transfer."""
    acks: list[float] = []
    stop = asyncio.Event()

    def observe(start: float, end: float, ok: bool) -> None:
        if ok:
            acks.append(end)

    load = asyncio.create_task(run_load(await cluster.write_op(), concurrency, 120.0, observer=observe, stop=stop))
    try:
        await asyncio.sleep(steady)
        old = await cluster.leader()
        target = next(m for m in cluster.members if m != old)
        admin = cluster.client()
        asked = time.perf_counter()
        await admin.transfer_leader(target)
        while await cluster.leader() == old:
            await asyncio.sleep(0.01)
        moved = time.perf_counter()
        await asyncio.sleep(steady)
    finally:
        stop.set()
        await load
    times = sorted(acks)
    gaps = [b - a for a, b in itertools.pairwise(times) if b >= asked and a <= moved]
    if not gaps:
        raise RuntimeError("no write was acknowledged around the transfer")
    return round(max(gaps) * 1000, 1)


async def measure_transfers(cluster: RaftschedCluster, trials: int, concurrency: int,
                            steady: float) -> dict[str, float | list[float]]:
    pauses = [await transfer_trial(cluster, concurrency, steady) for _ in range(trials)]
    return {"trials": len(pauses), "pauses_ms": pauses, "median_ms": statistics.median(pauses),
            "max_ms": max(pauses)}


async def measure_end_to_end(cluster: RaftschedCluster, jobs: int, timeout: float) -> dict[str, float | int | bool]:
    """Submit `jobs` noop jobs (batches of 100, 4 in flight) to a cluster with executors; seconds from
    the first submit until no job is left pending, queued, assigned or running."""
    client = cluster.client()
    batches = [[cluster.spec() for _ in range(min(100, jobs - i))] for i in range(0, jobs, 100)]
    start = time.perf_counter()
    pending = iter(batches)

    async def submitter() -> None:
        for specs in pending:
            await client.submit_jobs(specs)

    await asyncio.gather(*(submitter() for _ in range(4)))
    submitted = time.perf_counter() - start
    timed_out = False
    while await cluster.active_jobs(client):
        if time.perf_counter() - start > timeout:
            timed_out = True
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    succeeded = await cluster.count_jobs(client, J.JOB_STATE_SUCCEEDED)
    return {"jobs": jobs, "succeeded": succeeded, "seconds": round(elapsed, 3),
            "submit_seconds": round(submitted, 3), "timed_out": timed_out,
            "jobs_per_s": round(succeeded / elapsed, 1)}


async def _running_job(client: AsyncClient, job_ids: list[str], timeout: float) -> jobs_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job_id in job_ids:
            job = await client.get_job(job_id)
            if job.state == J.JOB_STATE_RUNNING and job.attempts:
                return job
        await asyncio.sleep(0.05)
    raise RuntimeError("no sleep job started running")


async def executor_loss_trial(cluster: RaftschedCluster, timeout: float = 40, restore: bool = True,
                              ) -> dict[str, float]:
    """SIGKILL the executor running a sleep job; seconds from the kill until the job's attempt is
    ended (the executor declared lost) and until its next attempt is assigned (leader-stamped)."""
    client = cluster.client()
    specs = [cluster.spec("sleep", b"60000", backoff=J.RetryBackoff(initial_ms=1)) for _ in range(4)]
    job_ids = [r.job.id for r in (await client.submit_jobs(specs)).results]
    try:
        job = await _running_job(client, job_ids, 20)
        victim = job.attempts[-1].executor
        killed_ms = time.time() * 1000
        cluster.executors[victim].kill9()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = await client.get_job(job.id)
            if len(job.attempts) >= 2 and job.attempts[1].assigned_ms:
                first, second = job.attempts[0], job.attempts[1]
                return {"detect_s": round((first.finished_ms - killed_ms) / 1000, 3),
                        "requeue_s": round((second.assigned_ms - killed_ms) / 1000, 3)}
            await asyncio.sleep(0.05)
        raise RuntimeError(f"job {job.id} got no second attempt within {timeout:.0f} s of the kill")
    finally:
        await asyncio.gather(*(client.cancel_job(j, "bench done") for j in job_ids), return_exceptions=True)
        if restore:
            await _restart_executors(cluster)


async def _restart_executors(cluster: RaftschedCluster) -> None:
    for eid, proc in cluster.executors.items():
        if not proc.alive():
            cluster.start_executor(eid)
    await cluster.wait_executors(list(cluster.executors))

"""The phases every system goes through with the same load generator: writes at several numbers of
requests in flight, and leader-failover trials. CPU time of the load generator's process (client)
and of the servers is sampled over each measured window, to tell where the time goes."""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from benchlib.loadgen import run_load
from benchlib.procs import cpu_seconds
from benchlib.systems import System

T = TypeVar("T")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class CpuSample:
    wall: float
    client: float
    members: dict[str, float]  # member -> CPU seconds so far

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSample:
        return cls(time.perf_counter(), time.process_time(), {m: cpu_seconds(p) for m, p in pids.items()})


def cpu_figures(before: CpuSample, after: CpuSample, ops: int) -> dict[str, object]:
    """CPU cores used over the window by the load generator and the servers, and CPU µs per write."""
    wall = max(after.wall - before.wall, 1e-9)
    client = after.client - before.client
    members = {m: after.members.get(m, before.members[m]) - before.members[m] for m in before.members}
    server = sum(members.values())
    per_op = 1e6 / ops if ops else math.nan
    return {"client_cpu_cores": round(client / wall, 2), "server_cpu_cores": round(server / wall, 2),
            "server_cpu_cores_by_member": {m: round(s / wall, 2) for m, s in sorted(members.items())},
            "client_cpu_us_per_op": round(client * per_op, 1), "server_cpu_us_per_op": round(server * per_op, 1)}


async def measure_level(system: System, concurrency: int, duration: float, warmup: float) -> dict[str, object]:
    """Acknowledged writes per second and latency with `concurrency` requests in flight."""
    op = await system.write_op()
    pids = system.server_pids()
    samples: list[CpuSample] = []

    async def sample_window() -> None:
        await asyncio.sleep(warmup)
        samples.append(CpuSample.take(pids))
        await asyncio.sleep(duration)
        samples.append(CpuSample.take(pids))

    sampler = asyncio.create_task(sample_window())
    result = await run_load(op, concurrency, duration, warmup=warmup)
    await sampler
    out: dict[str, object] = {**result.summary(), **cpu_figures(samples[0], samples[1], result.acked)}
    log(f"{system.name}: {concurrency:>3} in flight: {out['tput']:>8.0f}/s  p50 {out['p50_ms']:.2f} ms  "
        f"p99 {out['p99_ms']:.2f} ms  errors {out['errors']}  cpu client {out['client_cpu_cores']} "
        f"server {out['server_cpu_cores_by_member']} cores")
    return out


async def failover_trial(system: System, concurrency: int, steady: float, timeout: float) -> float:
    """Seconds from SIGKILL of the leader (under a steady write load) to the first acknowledged write
    that was sent after the kill; nan when none came within `timeout`."""
    op = await system.write_op()
    stop = asyncio.Event()
    kill_at = math.inf
    first_ack: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def observe(start: float, end: float, ok: bool) -> None:
        if ok and start >= kill_at and not first_ack.done():
            first_ack.set_result(end)

    load = asyncio.create_task(run_load(op, concurrency, steady + timeout + 5, observer=observe, stop=stop))
    try:
        await asyncio.sleep(steady)
        leader = await system.leader()
        kill_at = time.perf_counter()
        system.kill(leader)
        try:
            window = await asyncio.wait_for(first_ack, timeout) - kill_at
        except TimeoutError:
            window = math.nan
    finally:
        stop.set()
        await load
    system.restart(leader)
    await system.wait_caught_up(leader, timeout=60)
    return window


async def measure_failover(system: System, trials: int, concurrency: int = 16, steady: float = 1.0,
                           timeout: float = 20.0) -> dict[str, object]:
    windows: list[float] = []
    for i in range(trials):
        window = await failover_trial(system, concurrency, steady, timeout)
        log(f"{system.name}: failover trial {i + 1}/{trials}: {window:.3f} s")
        windows.append(window)
    done = [w for w in windows if not math.isnan(w)]
    return {"trials_s": [round(w, 3) for w in windows], "concurrency": concurrency,
            "median_s": round(statistics.median(done), 3) if done else math.nan,
            "min_s": round(min(done), 3) if done else math.nan, "max_s": round(max(done), 3) if done else math.nan}


async def guarded(name: str, errors: dict[str, str], step: Callable[[], Awaitable[T]]) -> T | None:
    """Run one measurement; a failure is recorded and reported, the rest of the run goes on."""
    try:
        return await step()
    except Exception as e:
        errors[name] = f"{type(e).__name__}: {e}".strip()[:500]
        log(f"{name} failed: {errors[name]}")
        return None

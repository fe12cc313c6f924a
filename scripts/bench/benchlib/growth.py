"""The `growth` phase (SPEC §9, issue 13): how a cluster holds up as finished jobs pile up.

One 3-node cluster (default settings: fsync on, 7 d retention, so nothing is purged) with 2
executors x 8 slots keeps growing; at each number of finished jobs stored it measures:

- the leader's RSS and data-directory size;
- SubmitJob throughput at 64 in flight, the executors running what is submitted;
- a follower killed with SIGKILL and restarted: seconds until it applied the leader's commit index;
- a snapshot made (as for a backup): how long it took, and the longest event-loop stall of the
  leader meanwhile (its `raftsched_snapshot_*` metrics);
- a new node added as a learner: seconds until it caught up (InstallSnapshot of the whole state).

History is made as users make it: noop jobs submitted with SubmitJobs and run to SUCCEEDED.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchlib.loadgen import run_load
from benchlib.procs import HOST, Proc, ProcessSet, free_ports
from benchlib.raftsched_sys import RaftschedCluster, _env, raftsched_command
from raftsched.v1 import jobs_pb2

J = jobs_pb2
FULL_SIZES = (0, 10_000, 100_000, 300_000, 1_000_000)
QUICK_SIZES = (0, 1_000, 3_000)
FILL_BATCH = 1000
FILL_IN_FLIGHT = 4
TARGETS = {  # issue 13, at the largest size
    "rss_vs_10k": 1.3, "submit_vs_0": 0.9, "caught_up_s": 5.0, "loop_stall_ms": 10.0, "install_s": 30.0}


def log(message: str) -> None:
    print(f"bench: growth: {message}", flush=True, file=sys.stderr)


class GrowthCluster(RaftschedCluster):
    """A raftsched cluster whose nodes serve /metrics, with a spare node id for install trials."""

    def __init__(self, root: Path, procs: ProcessSet) -> None:
        super().__init__(root, procs, "growth")
        self.metrics_port = dict(zip(self.members, free_ports(len(self.members)), strict=True))

    def _argv(self, member: str) -> list[str]:
        return [*super()._argv(member), "--metrics-listen", f"{HOST}:{self.metrics_port[member]}"]

    def data_dir(self, member: str) -> Path:
        return self.root / f"raftsched-{self.label}" / member

    def metric(self, member: str, name: str) -> float:
        url = f"http://{HOST}:{self.metrics_port[member]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        return float("nan")

    async def counts(self) -> dict[str, int]:
        leader = await self.leader()
        status = await self._local_status(leader)
        return dict(status.job_counts) if status is not None else {}


async def finished(cluster: GrowthCluster) -> int:
    counts = await cluster.counts()
    return sum(counts.get(s, 0) for s in ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"))


async def fill(cluster: GrowthCluster, target: int, timeout: float) -> float:
    """Submit noop jobs until `target` finished jobs are stored; returns the seconds it took."""
    client = cluster.client(timeout=60)
    started = time.monotonic()
    have = await finished(cluster)
    todo = max(0, target - have)
    batches = iter(range(0, todo, FILL_BATCH))

    async def submitter() -> None:
        for first in batches:
            count = min(FILL_BATCH, todo - first)
            await client.submit_jobs([cluster.spec() for _ in range(count)])

    await asyncio.gather(*(submitter() for _ in range(FILL_IN_FLIGHT)))
    while await finished(cluster) < target:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"only {await finished(cluster)} of {target} jobs finished in {timeout:.0f} s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def dir_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file RocksDB deleted meanwhile
                total += os.lstat(os.path.join(root, name)).st_size
    return total / 1e6


async def submit_rate(cluster: GrowthCluster, duration: float) -> float:
    result = await run_load(await cluster.write_op(), 64, duration, warmup=min(1.0, duration / 4))
    return round(result.throughput, 1)


async def follower_catch_up(cluster: GrowthCluster, timeout: float = 120) -> float:
    leader = await cluster.leader()
    follower = next(m for m in cluster.members if m != leader)
    killed = time.monotonic()
    cluster.proc[follower].kill9()
    cluster.proc[follower].start()
    while not await cluster._caught_up(follower):
        if time.monotonic() - killed > timeout:
            raise RuntimeError(f"{follower} not caught up {timeout:.0f} s after its restart")
        await asyncio.sleep(0.05)
    return round(time.monotonic() - killed, 3)


async def snapshot_figures(cluster: GrowthCluster, scratch: Path) -> dict[str, float]:
    leader = await cluster.leader()
    target = scratch / "growth-backup.rss"
    proc = await asyncio.create_subprocess_exec(
        *raftsched_command(), "snapshot", "save", str(target), "--cluster", cluster.address(leader),
        env=_env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"snapshot save failed: {err.decode()[-300:]}")
    size = target.stat().st_size
    target.unlink()
    return {"snapshot_s": round(cluster.metric(leader, "raftsched_snapshot_make_seconds"), 3),
            "loop_stall_ms": round(1000 * cluster.metric(leader, "raftsched_snapshot_loop_stall_seconds"), 1),
            "snapshot_mb": round(size / 1e6, 1)}


async def install_new_node(cluster: GrowthCluster, trial: int, timeout: float = 300) -> float:
    """Add n4 as a learner (a fresh data directory), time its catch-up by InstallSnapshot, remove it."""
    port = free_ports(1)[0]
    address = f"{HOST}:{port}"
    data = cluster.root / f"growth-n4-{trial}"
    leader = cluster.address(await cluster.leader())
    add = await asyncio.create_subprocess_exec(
        *raftsched_command(), "member", "add", "n4", address, "--learner", "--cluster", leader, env=_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await add.communicate()
    if add.returncode != 0:
        raise RuntimeError(f"member add failed: {err.decode()[-300:]}")
    argv = [*raftsched_command(), "node", "--id", "n4", "--listen", address, "--data-dir", str(data),
            "--join", leader, "--log-level", "warning"]
    node = cluster.procs.add(Proc(f"growth-n4-{trial}", argv, cluster.root / "logs" / f"growth-n4-{trial}.log",
                                  env=_env()))
    started = time.monotonic()
    node.start()
    try:
        while True:
            status = await cluster._local_status_at(address)
            leader_status = await cluster._local_status(await cluster.leader())
            if status is not None and leader_status is not None and status.applied_index >= leader_status.commit_index:
                return round(time.monotonic() - started, 3)
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"n4 not caught up in {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        node.stop()
        remove = await asyncio.create_subprocess_exec(
            *raftsched_command(), "member", "remove", "n4", "--cluster", ",".join(cluster.addresses), env=_env(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await remove.wait()


async def measure_point(cluster: GrowthCluster, size: int, duration: float, trial: int) -> dict[str, Any]:
    leader = await cluster.leader()
    point: dict[str, Any] = {"finished_jobs": await finished(cluster)}
    point["leader_rss_mb"] = round(rss_mb(cluster.proc[leader].pid), 1)
    point["data_dir_mb"] = round(dir_mb(cluster.data_dir(leader)), 1)
    point["submit_64_per_s"] = await submit_rate(cluster, duration)
    point["caught_up_s"] = await follower_catch_up(cluster)
    point.update(await snapshot_figures(cluster, cluster.root))
    point["install_s"] = await install_new_node(cluster, trial)
    log(f"at {size}: {point}")
    return point


async def measure_growth(root: Path, procs: ProcessSet, sizes: tuple[int, ...], duration: float,
                         fill_timeout: float) -> dict[str, Any]:
    cluster = GrowthCluster(root, procs)
    points: dict[str, Any] = {}
    try:
        await cluster.start()
        for eid in ("e1", "e2"):
            cluster.start_executor(eid, slots=8)
        await cluster.wait_executors(["e1", "e2"])
        for trial, size in enumerate(sizes):
            seconds = await fill(cluster, size, fill_timeout)
            log(f"{size} finished jobs stored ({seconds:.0f} s to fill)")
            points[str(size)] = await measure_point(cluster, size, duration, trial)
    finally:
        await cluster.close()
        procs.stop([*cluster.executors.values(), *cluster.proc.values()])
    return {"points": points, "targets": TARGETS, "verdict": verdict(points, sizes)}


def verdict(points: dict[str, Any], sizes: tuple[int, ...]) -> dict[str, Any]:
    """Each target at the largest size: the figure, the target, and whether it is met."""
    if not points:
        return {}
    largest = points[str(sizes[-1])]
    base_rss = points.get("10000", points[str(sizes[1] if len(sizes) > 1 else sizes[0])])["leader_rss_mb"]
    zero = points[str(sizes[0])]
    figures = {
        "rss_vs_10k": largest["leader_rss_mb"] / base_rss,
        "submit_vs_0": largest["submit_64_per_s"] / zero["submit_64_per_s"],
        "caught_up_s": largest["caught_up_s"],
        "loop_stall_ms": largest["loop_stall_ms"],
        "install_s": largest["install_s"],
    }
    higher_is_better = {"submit_vs_0"}
    return {name: {"figure": round(value, 3), "target": TARGETS[name],
                   "met": value >= TARGETS[name] if name in higher_is_better else value <= TARGETS[name]}
            for name, value in figures.items()}


def table(growth: dict[str, Any]) -> str:
    points = growth.get("points", {})
    if not points:
        return ""
    lines = ["", "growth (finished jobs stored)", "",
             "| finished jobs | leader RSS MB | data dir MB | SubmitJob/s @64 | follower kill→caught up s "
             "| snapshot s | loop stall ms | new node install s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in points.values():
        lines.append(f"| {p['finished_jobs']:,} | {p['leader_rss_mb']} | {p['data_dir_mb']} | {p['submit_64_per_s']} "
                     f"| {p['caught_up_s']} | {p['snapshot_s']} | {p['loop_stall_ms']} | {p['install_s']} |")
    for name, v in growth.get("verdict", {}).items():
        lines.append(f"- {name}: {v['figure']} (target {v['target']}): {'met' if v['met'] else 'MISSED'}")
    return "\n".join(lines)

#!/usr/bin/env python3
"""Benchmark raftsched side by side with etcd and PySyncObj on this machine (SPEC §9).

    python scripts/bench/run.py [--quick | --smoke] [--json FILE] [--keep]

Installs what is missing (Debian etcd-server/etcd-client via apt-get, pysyncobj via pip), then
measures, one system after the other on 127.0.0.1 and with the same asyncio load generator:
acknowledged writes at 1, 16 and 128 in flight, the leader-failover window (SIGKILL the leader
under load), and for raftsched also SubmitJobs batches, end-to-end noop jobs with 4 executors and
executor-loss recovery. Prints one markdown table and writes the JSON; ratios are raftsched's
figure over the anchor's. The table's "gRPC floor" column is a Python gRPC server whose SubmitJob
does nothing (floor_server.py): the most any Python gRPC server gets here from this load
generator. The "replication floor" column is three processes doing only a replicated, durable
write (replication_floor.py), in rounds as raftsched's: a bound on its write path here. --quick
(CI's smoke run) takes under two minutes and a half; --smoke, the test suite's run of every
phase, about half that.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import math
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import growth, install, report
from benchlib.floor import GrpcFloor, ReplicationFloor
from benchlib.phases import guarded, log, measure_failover, measure_level
from benchlib.procs import ProcessSet
from benchlib.systems import System

from raftsched.cli import progress

Results = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...] = (1, 16, 128)
    # PySyncObj's levels (etcd gets raftsched's): its commits wait for its 50 ms tick, so it needs
    # many outstanding calls for its best rate, which the peak ratio compares against.
    anchor_levels: tuple[int, ...] = (1, 16, 128, 1024)
    duration: float = 15.0  # measured seconds per level
    warmup: float = 1.0
    failover_trials: int = 5
    failover_concurrency: int = 16
    steady: float = 1.0  # seconds of load before the kill
    batch: int = 100
    batch_concurrency: int = 8
    e2e_jobs: int = 20_000
    e2e_timeout: float = 120.0
    executors: int = 4
    loss_trials: int = 3
    stream_concurrency: int = 128
    transfer_trials: int = 7
    transfer_concurrency: int = 16
    growth_sizes: tuple[int, ...] = growth.FULL_SIZES
    growth_duration: float = 10.0
    growth_fill_timeout: float = 1800.0


FULL = Plan()
QUICK = Plan(anchor_levels=(128, 1024), duration=2.5, warmup=0.5, failover_trials=3, steady=0.5,
             e2e_jobs=1_000, e2e_timeout=20.0, loss_trials=1, transfer_trials=7, growth_sizes=growth.QUICK_SIZES,
             growth_duration=2.0, growth_fill_timeout=120.0)
# The test suite's run of the harness (tests/bench): every phase and every key of the JSON, in the
# shortest windows that still measure something. Its figures are too short to quote.
SMOKE = replace(QUICK, duration=0.6, warmup=0.2, failover_trials=1, steady=0.3, e2e_jobs=200,
                transfer_trials=1, growth_sizes=(0, 1_000), growth_duration=0.5)


def cluster_levels(plan: Plan, system: str) -> tuple[int, ...]:
    return plan.anchor_levels if system == "pysyncobj" else plan.levels


async def writes_and_failover(system: System, plan: Plan, out: Results, errors: dict[str, str]) -> None:
    writes: dict[str, object] = {}
    for c in cluster_levels(plan, system.name):
        level = await guarded(f"writes_{c}", errors, partial(measure_level, system, c, plan.duration, plan.warmup))
        if level is not None:
            writes[str(c)] = level
    out["writes"] = writes
    failover = await guarded("failover", errors, lambda: measure_failover(
        system, plan.failover_trials, plan.failover_concurrency, plan.steady))
    if failover is not None:
        out["failover"] = failover


async def bench_raftsched(plan: Plan, root: Path, procs: ProcessSet) -> Results:
    from benchlib import raftsched_sys as rs

    out: Results = {"nodes": 3, "fsync": True}
    errors: dict[str, str] = {}
    cluster = rs.RaftschedCluster(root, procs, "write")
    try:
        await cluster.start()
        await writes_and_failover(cluster, plan, out, errors)
        batch = await guarded("submit_batch", errors, lambda: rs.measure_batches(
            cluster, plan.batch, plan.batch_concurrency, plan.duration, plan.warmup))
        if batch is not None:
            out["submit_batch"] = batch
            log(f"raftsched: SubmitJobs x{plan.batch}, {plan.batch_concurrency} in flight: "
                f"{batch['jobs_per_s']:.0f} jobs/s")
        stream = await guarded("stream", errors, lambda: rs.measure_stream(
            cluster, plan.stream_concurrency, plan.duration, plan.warmup))
        if stream is not None:
            out["stream_writes"] = {str(plan.stream_concurrency): stream}
            log(f"raftsched: SubmitJobStream, {plan.stream_concurrency} in flight: {stream['tput']:.0f}/s")
        transfer = await guarded("transfer", errors, lambda: rs.measure_transfers(
            cluster, plan.transfer_trials, plan.transfer_concurrency, plan.steady))
        if transfer is not None:
            out["transfer"] = transfer
            log(f"raftsched: leader transfer, longest write gap median {transfer['median_ms']} ms")
    except Exception as e:
        errors["start"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        await cluster.close()
        procs.stop(cluster.proc.values())
    # A fresh cluster for executors: the write phases left many queued jobs that would run first.
    jobs = rs.RaftschedCluster(root, procs, "jobs")
    try:
        await jobs.start()
        ids = [f"e{i + 1}" for i in range(plan.executors)]
        for eid in ids:
            jobs.start_executor(eid)
        await jobs.wait_executors(ids)
        e2e = await guarded("end_to_end", errors, lambda: rs.measure_end_to_end(jobs, plan.e2e_jobs, plan.e2e_timeout))
        if e2e is not None:
            out["end_to_end"] = e2e
            log(f"raftsched: end-to-end {e2e['succeeded']} noop jobs in {e2e['seconds']} s: {e2e['jobs_per_s']:.0f}/s")
        out["executor_loss"] = await executor_loss(jobs, plan, errors)
        busy = await guarded("submit_1_busy", errors, lambda: rs.measure_lone_submits(jobs, plan.duration, plan.warmup))
        procs.stop(list(jobs.executors.values()))
        idle = await guarded("submit_1_idle", errors, lambda: rs.measure_lone_submits(jobs, plan.duration, plan.warmup))
        if busy is not None and idle is not None:
            out["lone_submits"] = {"busy": busy, "idle": idle}
            log(f"raftsched: SubmitJob p50 at 1 in flight: {busy['p50_ms']} ms with executors running them, "
                f"{idle['p50_ms']} ms without")
    except Exception as e:
        errors["jobs_cluster"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        await jobs.close()
        procs.stop([*jobs.executors.values(), *jobs.proc.values()])
    if errors:
        out["errors"] = errors
    return out


async def executor_loss(cluster: Any, plan: Plan, errors: dict[str, str]) -> Results:
    from benchlib import raftsched_sys as rs

    trials: list[dict[str, float]] = []
    for i in range(plan.loss_trials):
        last = i == plan.loss_trials - 1  # the cluster is torn down next: no need to restart the executor
        trial = await guarded(f"executor_loss_{i + 1}", errors,
                              partial(rs.executor_loss_trial, cluster, restore=not last))
        if isinstance(trial, dict):
            log(f"raftsched: executor loss trial {i + 1}/{plan.loss_trials}: attempt ended after "
                f"{trial['detect_s']} s, re-assigned after {trial['requeue_s']} s")
            trials.append(trial)
    out: Results = {"trials": trials}
    for key in ("detect_s", "requeue_s"):
        values = [t[key] for t in trials]
        out[key.replace("_s", "_median_s")] = round(statistics.median(values), 3) if values else math.nan
    return out


async def bench_anchor(system: System, plan: Plan) -> Results:
    out: Results = {}
    errors: dict[str, str] = {}
    try:
        await system.start()
        await writes_and_failover(system, plan, out, errors)
    except Exception as e:
        errors["start"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        await system.close()
    if errors:
        out["errors"] = errors
    return out


async def bench_etcd(plan: Plan, root: Path, procs: ProcessSet) -> Results:
    binary = install.ensure_etcd()
    if binary is None:
        return {"skipped": "etcd could not be installed"}
    from benchlib.etcd import ELECTION_MS, HEARTBEAT_MS, EtcdCluster

    cluster = EtcdCluster(binary, root, procs)
    out = {"members": 3, "value_bytes": 200, "heartbeat_ms": HEARTBEAT_MS, "election_ms": ELECTION_MS,
           **await bench_anchor(cluster, plan)}
    procs.stop(cluster.proc.values())
    return out


async def bench_pysyncobj(plan: Plan, root: Path, procs: ProcessSet) -> Results:
    if not install.ensure_pysyncobj():
        return {"skipped": "pysyncobj could not be installed"}
    from benchlib.pso import PsoCluster

    cluster = PsoCluster(root, procs)
    out = {"replicas": 3, **await bench_anchor(cluster, plan)}
    procs.stop(cluster.proc.values())
    return out


async def bench_floor(plan: Plan, root: Path, procs: ProcessSet) -> Results:
    """What a Python gRPC server that does nothing gets from the same load generator."""
    return await _bench_writes_only(GrpcFloor(root, procs), plan, procs)


async def bench_replication_floor(plan: Plan, root: Path, procs: ProcessSet) -> Results:
    """What three Python processes doing only a replicated, durable write get (replication_floor.py):
    between it and raftsched is the cost of Raft, RocksDB, the state machine and the checks."""
    return await _bench_writes_only(ReplicationFloor(root, procs), plan, procs)


async def _bench_writes_only(floor: GrpcFloor | ReplicationFloor, plan: Plan, procs: ProcessSet) -> Results:
    out: Results = {}
    errors: dict[str, str] = {}
    try:
        await floor.start()
        writes: dict[str, object] = {}
        for c in plan.levels:
            level = await guarded(f"writes_{c}", errors, partial(measure_level, floor, c, plan.duration, plan.warmup))
            if level is not None:
                writes[str(c)] = level
        out["writes"] = writes
    except Exception as e:
        errors["start"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        await floor.close()
        procs.stop(floor.procs)
    if errors:
        out["errors"] = errors
    return out


async def bench_growth(plan: Plan, root: Path, procs: ProcessSet) -> Results:
    try:
        return await growth.measure_growth(root, procs, plan.growth_sizes, plan.growth_duration,
                                           plan.growth_fill_timeout)
    except Exception as e:
        return {"errors": {"growth": f"{type(e).__name__}: {e}"[:500]}}


PHASES = ("raftsched", "etcd", "pysyncobj", "grpc_floor", "replication_floor", "growth")


async def bench_all(plan: Plan, root: Path, procs: ProcessSet, only: tuple[str, ...] = PHASES) -> Results:
    # Install first, so no install runs between measurements.
    if "etcd" in only:
        install.ensure_etcd()
    if "pysyncobj" in only:
        install.ensure_pysyncobj()
    results: Results = {}
    systems = (("raftsched", bench_raftsched), ("etcd", bench_etcd), ("pysyncobj", bench_pysyncobj),
               ("grpc_floor", bench_floor), ("replication_floor", bench_replication_floor), ("growth", bench_growth))
    chosen = [(name, bench) for name, bench in systems if name in only]
    # On a terminal, a bar over the phases (raftsched.cli.progress); the log lines go on above it.
    with progress.phases("bench", [name for name, _ in chosen]) as begin:
        for name, bench in chosen:
            begin(name)
            started = time.monotonic()
            log(f"--- {name}")
            results[name] = await bench(plan, root, procs)
            results[name]["bench_seconds"] = round(time.monotonic() - started, 1)
    results["ratios"] = report.ratios(results, plan.levels)
    return results


def _meta(plan: Plan, quick: bool) -> Results:
    return {"quick": quick, "plan": asdict(plan), "cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _json_safe(value: Any) -> Any:
    """NaN is not JSON: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (under two minutes): CI's smoke run")
    parser.add_argument("--smoke", action="store_true",
                        help="shorter still: the test suite's check that every phase runs (figures not comparable)")
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the data and log directory")
    parser.add_argument("--only", metavar="PHASE,...", default=",".join(PHASES),
                        help=f"run only these phases ({', '.join(PHASES)}); ratios need the first four")
    args = parser.parse_args(argv)
    only = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = set(only) - set(PHASES)
    if unknown:
        parser.error(f"--only: unknown phases {sorted(unknown)} (known: {', '.join(PHASES)})")
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="raftsched-bench-"))
    procs = ProcessSet()
    atexit.register(procs.stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    try:
        results = asyncio.run(bench_all(plan, root, procs, only))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()
    results["meta"] = {**_meta(plan, args.quick or args.smoke), "seconds": round(time.monotonic() - started, 1)}
    shared = any(name in results for name in PHASES[:4])
    print((report.table(results, plan.levels) if shared else "") + growth.table(results.get("growth", {})), flush=True)
    failed = {name: r["errors"] for name, r in results.items() if isinstance(r, dict) and r.get("errors")}
    if args.json:
        Path(args.json).write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    if failed or args.keep:
        log(f"logs and data kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    for name, errors in failed.items():
        log(f"{name}: {errors}")
    log(f"done in {results['meta']['seconds']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

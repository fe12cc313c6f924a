#!/usr/bin/env python3
"""Run raftsched under faults and check SPEC §6 (the chaos harness of SPEC §8).

    python jepsen-style/run.py --nodes 3 --executors 2 --time 45 --nemesis kill,pause,partition --seed 7

Phases: start a cluster of separate processes on 127.0.0.1 with every node-to-node and
executor-to-node link through a fault-injecting proxy; run the workload and the nemesis together
for --time seconds; heal everything and wait (bounded) for a leader and for every job to end;
collect the final state (jobs, each node's committed log, status); stop every process; run the
checkers and write the report. Everything lands in STORE/<run>/; the exit code is 0 when every
checker is valid, 1 when one is not, 2 when the harness itself could not finish the run.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import json
import os
import random
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import Cluster, kill_run_leftovers
from google.protobuf.json_format import MessageToDict
from history import History
from nemesis import KINDS, SCENARIOS, Nemesis
from workload import ProxyAwareClient, Workload, WorkloadConfig

from raftsched.cli import progress
from raftsched.client import ClientError
from raftsched.jobstates import TERMINAL
from raftsched.v1 import admin_pb2, admin_pb2_grpc, jobs_pb2

TERMINAL_NAMES = frozenset(jobs_pb2.JobState.Name(v).removeprefix("JOB_STATE_") for v in TERMINAL)
READ_LOG_PAGE = 2000
START_TIMEOUT = 30.0
CONVERGE_TIMEOUT = 20.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, choices=(3, 5), default=3)
    p.add_argument("--executors", type=int, default=2)
    p.add_argument("--slots", type=int, default=4, help="slots per executor")
    p.add_argument("--time", type=float, default=60.0, help="seconds of workload and faults")
    p.add_argument("--nemesis", default="kill,pause,partition",
                   help=f"comma list of {', '.join(KINDS)}, or all (or none); or the scripted scenario "
                        f"{', '.join(SCENARIOS)} (3 nodes, never part of all)")
    p.add_argument("--nemesis-interval", type=float, default=5.0, help="mean seconds between fault starts")
    p.add_argument("--rate", type=float, default=50.0, help="client operations per second, all clients")
    p.add_argument("--clients", type=int, default=96,
                   help="concurrent clients (96: enough that ops slowed by faults do not sink the rate; "
                        "24 reached 29 and 64 reached 40 of 50 ops/s under slow links)")
    p.add_argument("--seed", type=int, default=None, help="drives every random choice (default: random)")
    p.add_argument("--store", default="store", help="runs are written to STORE/<run>/")
    p.add_argument("--stale-reads", action="store_true",
                   help="some reads are stale=True against followers, cut-off ones first (the checker must "
                        "catch them: a run with this flag is expected to be invalid)")
    p.add_argument("--recovery-timeout", type=float, default=180.0,
                   help="after healing, seconds to wait for every job to end (a bound: it returns as "
                        "soon as they have; the backlog a run at the asked rate leaves on 1-2 executors "
                        "took over 60 s)")
    p.add_argument("--op-timeout", type=float, default=5.0,
                   help="seconds a client operation may take, retries included; then it is recorded as info")
    p.add_argument("--job-timeout", type=float, default=10.0,
                   help="per-attempt timeout of the workload's jobs in seconds (they run 0-1 s); 0 for none")
    p.add_argument("--schedules", type=int, default=0,
                   help="recurring schedules created at the start (catch-up all, skip, once in turn), paused "
                        "after healing and checked by checkers/schedules.py (default 0: none)")
    p.add_argument("--schedule-every", type=float, default=1.0, help="the schedules' interval in seconds (>= 1)")
    p.add_argument("--long-jobs", type=float, default=0.0,
                   help="fraction of jobs that run 4-8 s instead of 0-1 s (so faults and cancels meet running tasks)")
    p.add_argument("--dependencies", type=float, default=0.0,
                   help="fraction of new jobs that depend on 1-2 recently acknowledged jobs")
    p.add_argument("--noop-jobs", type=float, default=0.0,
                   help="fraction of jobs run by the executors' noop handler (no process, so no ledger line)")
    p.add_argument("--max-append-bytes", type=int, default=None,
                   help="the nodes' --max-append-bytes (1: one log entry per append message, which the "
                        "divergence scenario needs to show an early commit)")
    p.add_argument("--keep-data", action="store_true", help="keep the nodes' RocksDB dirs of a valid run")
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    args.kinds, args.notes = parse_kinds(args.nemesis, args.nodes)
    if args.executors < 0 or args.clients < 1 or args.rate <= 0 or args.time <= 0:
        p.error("--executors >= 0, --clients >= 1, --rate > 0 and --time > 0 please")
    if not all(0.0 <= f <= 1.0 for f in (args.long_jobs, args.dependencies, args.noop_jobs)):
        p.error("--long-jobs, --dependencies and --noop-jobs are fractions in [0, 1]")
    if args.schedules < 0 or args.schedule_every < 1:
        p.error("--schedules >= 0 and --schedule-every >= 1 please")
    return args


def parse_kinds(text: str, nodes: int = 5) -> tuple[list[str], list[str]]:
    wanted = [k.strip() for k in text.split(",") if k.strip() and k.strip() != "none"]
    if "all" in wanted:
        wanted = list(KINDS)
    unknown = [k for k in wanted if k not in KINDS + SCENARIOS]
    if unknown:
        raise SystemExit(f"run.py: unknown --nemesis kind(s) {unknown}; choose from "
                         f"{', '.join(KINDS + SCENARIOS)}, all")
    notes = []
    if "divergence" in wanted and nodes != 3:
        wanted.remove("divergence")
        notes.append("divergence scenario skipped: it needs --nodes 3")
    if "membership" in wanted and nodes < 5:
        wanted.remove("membership")
        notes.append("membership nemesis skipped: it needs --nodes 5 (removing one of 3 voters leaves no "
                     "room for another impaired node)")
    return list(dict.fromkeys(wanted)), notes


def say(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Run:
    def __init__(self, args: argparse.Namespace, run_dir: Path) -> None:
        self.args, self.run_dir = args, run_dir
        self.run_id = f"{run_dir.name}-{os.getpid()}"
        self.rng = random.Random(args.seed)
        node_args = [] if args.max_append_bytes is None else ["--max-append-bytes", str(args.max_append_bytes)]
        self.cluster = Cluster(run_dir, self.run_id, args.nodes, args.executors, args.slots,
                               faketime="clock" in args.kinds, node_args=node_args)
        self.info: dict[str, Any] = {
            "options": {k: v for k, v in vars(args).items() if k not in ("kinds", "notes")},
            "seed": args.seed, "nemesis_kinds": args.kinds, "notes": list(args.notes),
            "start_wall": time.time(), "command": [sys.executable, *sys.argv],
        }
        self.history: History | None = None
        self.workload: Workload | None = None
        self.nemesis: Nemesis | None = None

    # --- phases ----------------------------------------------------------------------------

    async def main(self) -> None:
        try:
            await self.setup()
            await self.chaos()
            await self.recover()
            await self.collect()
        finally:
            await self.teardown()

    async def setup(self) -> None:
        say(f"starting {self.args.nodes} nodes and {self.args.executors} executors in {self.run_dir}")
        src = self.cluster.snapshot_code()
        self.info["code"] = {"source": str(src), **git_state(src.parent)}
        await self.cluster.start()
        self.info["nodes"] = {n.id: {"address": n.address, "peers": n.peers, "pid": n.proc.pid}
                              for n in self.cluster.nodes.values()}
        self.info["executors"] = {e.id: {"cluster": e.cluster, "pid": e.proc.pid}
                                  for e in self.cluster.executors.values()}
        self.info["links"] = self.cluster.links
        self.write_run_json()
        leader = await self.wait_for_leader(START_TIMEOUT)
        if leader is None:
            raise HarnessError(f"no leader within {START_TIMEOUT:.0f} s of starting the cluster")
        connected = await self.wait_for_executors(20.0)
        say(f"leader {leader}; {connected}/{self.args.executors} executors connected")

    async def chaos(self) -> None:
        self.history = History(self.run_dir / "history.jsonl")
        self.info["clock"] = {"history_start_monotonic_ns": self.history.start_ns,
                              "wall_minus_monotonic_ns": time.time_ns() - time.monotonic_ns()}
        self.nemesis = Nemesis(self.cluster, self.history, self.args.kinds, random.Random(self.rng.random()),
                               interval=self.args.nemesis_interval)
        cfg = WorkloadConfig(rate=self.args.rate, clients=self.args.clients, stale_reads=self.args.stale_reads,
                             job_timeout=self.args.job_timeout, op_timeout=self.args.op_timeout,
                             schedules=self.args.schedules, schedule_every=self.args.schedule_every,
                             long_jobs=self.args.long_jobs, dependencies=self.args.dependencies,
                             noop_jobs=self.args.noop_jobs)
        self.workload = Workload(self.cluster, self.history, cfg, random.Random(self.rng.random()),
                                 ledger=self.run_dir / "ledger.txt", watch_log=self.run_dir / "watches.jsonl",
                                 stale_targets=self._cut_off_nodes)
        if self.args.schedules:
            await self.workload.create_schedules()
            say(f"created {len(self.workload.schedule_names)}/{self.args.schedules} schedule(s) every "
                f"{self.args.schedule_every:g} s: {', '.join(self.workload.schedule_names)}")
            if len(self.workload.schedule_names) < self.args.schedules:
                self.problem("could not create every schedule")
        say(f"workload at {self.args.rate:g} ops/s with {self.args.clients} clients; nemesis "
            f"{','.join(self.args.kinds) or 'none'} for {self.args.time:g} s (seed {self.args.seed})")
        wl = asyncio.create_task(self.workload.run())
        nem = asyncio.create_task(self.nemesis.run())
        try:
            await self._run_for(self.args.time)
        finally:
            nem.cancel()
            await asyncio.gather(nem, return_exceptions=True)
            await self.nemesis.stop_all()
            self.workload.stop()
            await asyncio.wait_for(asyncio.gather(wl, return_exceptions=True), 15.0)
        for line in self.nemesis.log:
            say(f"  nemesis {line}")

    async def _run_for(self, seconds: float) -> None:
        """Let the workload and the nemesis run; on a terminal, a progress bar shows how long is left,
        the writes acknowledged so far and the faults in force (raftsched.cli.progress)."""
        t0 = time.monotonic()
        with progress.timed("chaos", seconds) as bar:
            while (elapsed := time.monotonic() - t0) < seconds:
                assert self.workload is not None and self.nemesis is not None
                faults = ", ".join(f.f for f in self.nemesis.active) or "no fault"
                bar.update(elapsed, f"{len(self.workload.acked)} acked, {faults}")
                await asyncio.sleep(min(1.0, seconds - elapsed))
            bar.update(seconds, "done")

    def _cut_off_nodes(self) -> list[str]:
        """Nodes on the small side of an active partition (for --stale-reads)."""
        if self.nemesis is None:
            return []
        return [n for f in self.nemesis.active if f.is_partition for n in f.impairs]

    async def recover(self) -> None:
        """Heal, then wait (bounded) for a leader, for every job to end and for the logs to agree.
        A cluster that does not come back is a verdict on raftsched: noted, then checked."""
        t0 = time.monotonic()
        dead = [p.name for p in self.cluster.processes() if not p.alive()]
        if dead:  # every fault has been undone by now, so these died on their own
            self.info["unexpected_exits"] = {name: self.cluster.exit_code(name) for name in dead}
            self.problem(f"process(es) exited on their own during the run: {self.info['unexpected_exits']}")
        await self.cluster.heal_all()
        leader = await self.wait_for_leader(START_TIMEOUT)
        self.info["recovery"] = {"leader": leader}
        if leader is None:
            self.problem(f"no leader within {START_TIMEOUT:.0f} s after healing")
            return
        if self.workload is not None and self.workload.schedule_names:
            # Before waiting for the jobs: a schedule that keeps firing keeps jobs open.
            await self.workload.pause_schedules()
            unpaused = [n for n in self.workload.schedule_names if n not in self.workload.schedule_pauses]
            if unpaused:
                self.problem(f"could not pause schedule(s) {unpaused}")
        open_jobs = await self.wait_for_terminal(self.args.recovery_timeout)
        converged = await self.wait_for_convergence(CONVERGE_TIMEOUT)
        self.info["recovery"] = {"leader": leader, "seconds": round(time.monotonic() - t0, 3),
                                 "non_terminal_jobs": open_jobs, "logs_converged": converged}
        say(f"recovered in {time.monotonic() - t0:.1f} s: leader {leader}, {open_jobs} job(s) not terminal, "
            f"logs {'converged' if converged else 'NOT converged'}")

    def problem(self, text: str) -> None:
        self.info.setdefault("problems", []).append(text)
        say(f"WARNING: {text}")

    async def collect(self) -> None:
        try:
            jobs = await self.list_all_jobs()
        except ClientError as e:
            jobs = []
            self.problem(f"could not list the jobs after recovery: {e}")
        logs = {nid: await self.read_log(nid) for nid in self.cluster.node_ids}
        status = await self.cluster.status_dicts()
        state: dict[str, Any] = {"jobs": {j.id: MessageToDict(j) for j in jobs}, "logs": logs, "status": status}
        if self.workload is not None and self.workload.schedule_names:
            state.update(await self.collect_schedules())
        (self.run_dir / "final_state.json").write_text(json.dumps(state))
        self.info["final"] = {"jobs": len(jobs), "log_entries": {n: len(v["entries"]) for n, v in logs.items()}}
        say(f"collected {len(jobs)} jobs and {sum(len(v['entries']) for v in logs.values())} log entries")

    async def collect_schedules(self) -> dict[str, Any]:
        """Every schedule (linearizable read), the pauses' wall-clock ms and the reading's."""
        assert self.workload is not None
        schedules: dict[str, Any] = {}
        read_from_ms = time.time_ns() // 1_000_000  # the read reflects at least every decision made by then
        try:
            async with self.client() as c:
                resp = await c.list_schedules(timeout=15.0)
            schedules = {s.id: MessageToDict(s) for s in resp.schedules}
        except ClientError as e:
            self.problem(f"could not list the schedules after recovery: {e}")
        say(f"collected {len(schedules)} schedule(s)")
        return {"schedules": schedules, "schedule_pauses": self.workload.schedule_pauses,
                "collected_ms": read_from_ms}

    async def teardown(self) -> None:
        if self.nemesis is not None:
            await self.nemesis.stop_all()
        if self.history is not None:
            self.history.close()
        if self.cluster.proxy is not None:
            try:
                self.info["proxy_stats"] = (await self.cluster.proxy.call("stats"))["stats"]
            except Exception as e:
                self.info["proxy_stats"] = {"error": repr(e)}
        await self.cluster.stop_all()
        self.write_ledger()
        self.info["end_wall"] = time.time()
        if self.workload is not None:
            self.info["workload"] = {"acked_submits": len(self.workload.acked),
                                     "watches": len(self.workload.watch_results),
                                     "watches_backwards": sum(w["backwards"] for w in self.workload.watch_results)}
        self.write_run_json()

    # --- waiting ---------------------------------------------------------------------------

    async def wait_for_leader(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = await self.cluster.find_leader()
            if leader is not None:
                return leader
            await asyncio.sleep(0.2)
        return None

    async def wait_for_executors(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        connected = 0
        async with self.client() as c:
            while time.monotonic() < deadline:
                try:
                    resp = await c.list_executors(timeout=2.0)
                    connected = sum(e.state == jobs_pb2.EXECUTOR_STATE_CONNECTED for e in resp.executors)
                    if connected >= self.args.executors:
                        break
                except ClientError:
                    pass
                await asyncio.sleep(0.3)
        return connected

    async def wait_for_terminal(self, timeout: float) -> int:
        """Poll the leader's job counts by state until every job is terminal; the number still
        open. Not a full ListJobs each second: listing 12,000 jobs a second took most of the
        leader's time, and the backlog it was waiting for drained at 9 jobs/s (make chaos). The
        checkers judge the full, linearizable listing `collect` makes afterwards."""
        deadline = time.monotonic() + timeout
        open_jobs = -1
        while time.monotonic() < deadline:
            leader = await self.cluster.find_leader()
            status = await self.cluster.local_status(leader) if leader is not None else None
            if status is not None:
                open_jobs = sum(n for name, n in status.job_counts.items() if name not in TERMINAL_NAMES)
                if open_jobs == 0:
                    return 0
            await asyncio.sleep(1.0)
        return open_jobs

    async def wait_for_convergence(self, timeout: float) -> bool:
        """Every node answers and has applied the same index as the leader committed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sts = list((await self.cluster.statuses()).values())
            if all(s is not None for s in sts):
                commits = {s.commit_index for s in sts if s is not None}
                applied = {s.applied_index for s in sts if s is not None}
                if len(commits) == 1 and applied == commits:
                    return True
            await asyncio.sleep(0.3)
        return False

    # --- collecting ------------------------------------------------------------------------

    def client(self) -> ProxyAwareClient:
        return ProxyAwareClient(self.cluster, self.cluster.addresses, timeout=10.0)

    async def list_all_jobs(self) -> list[jobs_pb2.Job]:
        jobs: list[jobs_pb2.Job] = []
        token = ""
        async with self.client() as c:
            while True:
                resp = await c.list_jobs(page_size=1000, page_token=token, timeout=15.0)
                jobs.extend(resp.jobs)
                token = resp.next_page_token
                if not token:
                    return jobs

    async def read_log(self, nid: str) -> dict[str, Any]:
        """The node's committed log, straight from that node (Admin.ReadLog, paged)."""
        stub = admin_pb2_grpc.AdminStub(self.cluster.channel(self.cluster.nodes[nid].address))
        entries: list[list[Any]] = []
        commit = first = 0
        index = 0
        try:
            while True:
                resp = await stub.ReadLog(admin_pb2.ReadLogRequest(from_index=index, limit=READ_LOG_PAGE),
                                          timeout=10.0)
                commit, first = resp.commit_index, resp.first_index
                for e in resp.entries:
                    entries.append([e.index, e.term, _entry_type(e), base64.b64encode(e.data).decode()])
                if not resp.entries or resp.entries[-1].index >= commit:
                    break
                index = resp.entries[-1].index + 1
        except Exception as e:
            return {"commit_index": commit, "first_index": first, "entries": entries, "error": repr(e)}
        return {"commit_index": commit, "first_index": first, "entries": entries}

    # --- files -----------------------------------------------------------------------------

    def write_run_json(self) -> None:
        (self.run_dir / "run.json").write_text(json.dumps(self.info, indent=2, default=str))

    def write_ledger(self) -> None:
        """ledger.txt is written by the tasks themselves; make sure it exists and note its clock."""
        ledger = self.run_dir / "ledger.txt"
        ledger.touch()
        with ledger.open() as f:
            lines = sum(1 for _ in f)
        self.info["ledger"] = {"lines": lines, "format": "job attempt executor monotonic_ns, at a task's start, "
                               "every ~100 ms while it runs, and at its end",
                               "time": "CLOCK_MONOTONIC ns (time.monotonic_ns()); "
                               "history time = value - clock.history_start_monotonic_ns"}


def git_state(repo: Path) -> dict[str, Any]:
    """The commit and whether the package had uncommitted changes, when it is a git checkout."""
    import subprocess

    def git(*a: str) -> str:
        r = subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else ""

    try:
        return {"commit": git("rev-parse", "HEAD"),
                "dirty_files": len(git("status", "--porcelain", "--", "raftsched").splitlines())}
    except (OSError, subprocess.SubprocessError):
        return {}


def _entry_type(e: Any) -> str:
    try:
        return str(e.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number[e.type].name)
    except (KeyError, AttributeError):
        return str(getattr(e, "type", ""))


class HarnessError(Exception):
    """The harness could not carry the run through (not a verdict on raftsched)."""


# --- checking and reporting ------------------------------------------------------------------

def check(run_dir: Path) -> dict[str, Any]:
    try:
        import checkers
    except ImportError as e:
        say(f"checkers not importable ({e}); results are invalid by default")
        return {"valid": False, "checkers": {}, "error": f"checkers missing: {e}"}
    try:
        results: dict[str, Any] = checkers.check_all(run_dir)
    except Exception:
        return {"valid": False, "checkers": {}, "error": "check_all raised:\n" + traceback.format_exc()}
    return results


def report(run_dir: Path, results: dict[str, Any]) -> None:
    try:
        import report as report_module
    except ImportError as e:
        say(f"report module missing ({e}); no human report written")
        return
    try:
        report_module.write_report(run_dir, results)
    except Exception:
        say("write_report failed:\n" + traceback.format_exc())


def summarize(run: Run, results: dict[str, Any], seconds: float) -> None:
    h = run.history
    bad = sorted(k for k, v in results.get("checkers", {}).items() if not v.get("valid"))
    verdict = "VALID" if results.get("valid") else "INVALID"
    say(f"{verdict}: {run.run_dir} ({seconds:.0f} s in all)")
    if h is not None:
        by_f = {f: {t: h.count("client", t, f) for t in ("ok", "info", "fail")} for f in ("submit", "get", "cancel")}
        say(f"  client ops ok={h.count('client', 'ok')} info={h.count('client', 'info')} "
            f"fail={h.count('client', 'fail')}  {by_f}")
        faults = sorted({f for (w, f, t) in h.counts if w == "nemesis"})
        say(f"  faults: {h.count('nemesis', 'invoke')} ({', '.join(faults) or 'none'})")
    for name, v in sorted(results.get("checkers", {}).items()):
        say(f"  {'ok ' if v.get('valid') else 'BAD'} {name}")
    if results.get("error"):
        say(f"  error: {str(results['error']).strip().splitlines()[-1]}")
    for text in results.get("problems", []):
        say(f"  problem: {text}")
    if bad or not results.get("valid"):
        a = run.args
        say(f"  reproduce: python jepsen-style/run.py --nodes {a.nodes} --executors {a.executors} --time {a.time:g} "
            f"--nemesis {a.nemesis} --nemesis-interval {a.nemesis_interval:g} --seed {a.seed} --rate {a.rate:g} "
            f"--clients {a.clients} --op-timeout {a.op_timeout:g} --job-timeout {a.job_timeout:g}"
            f"{' --stale-reads' if a.stale_reads else ''}"
            f"{f' --schedules {a.schedules} --schedule-every {a.schedule_every:g}' if a.schedules else ''}"
            f"{f' --long-jobs {a.long_jobs:g}' if a.long_jobs else ''}"
            f"{f' --dependencies {a.dependencies:g}' if a.dependencies else ''}"
            f"{f' --noop-jobs {a.noop_jobs:g}' if a.noop_jobs else ''}"
            f"{' --slots ' + str(a.slots) if a.slots != 4 else ''}")


def make_run_dir(store: Path, args: argparse.Namespace) -> Path:
    base = f"{time.strftime('%Y%m%dT%H%M%S')}-n{args.nodes}-s{args.seed}"
    for i in range(100):
        d = store / (base if i == 0 else f"{base}-{i}")
        try:
            d.mkdir(parents=True)
            return d
        except FileExistsError:
            continue
    raise SystemExit(f"run.py: cannot make a run directory under {store}")


async def _run_main(run: Run) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    await run.main()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Absolute: the processes run with their log directory as cwd, so a relative --store (the
    # default) would put their data dirs and the tasks' ledger under logs/, not where checked.
    run_dir = make_run_dir(Path(args.store).resolve(), args)
    run = Run(args, run_dir)
    atexit.register(kill_run_leftovers, run.run_id)
    for note in args.notes:
        say(f"note: {note}")
    t0 = time.monotonic()
    error = ""
    try:
        asyncio.run(_run_main(run))
    except KeyboardInterrupt:
        error = "interrupted"
    except asyncio.CancelledError:
        error = "terminated"
    except HarnessError as e:
        error = f"harness: {e}"
    except Exception:
        error = "harness crashed:\n" + traceback.format_exc()
    kill_run_leftovers(run.run_id)
    if error:
        say(error)
        results: dict[str, Any] = {"valid": False, "checkers": {}, "error": error}
        have_history = (run_dir / "history.jsonl").exists() and (run_dir / "final_state.json").exists()
        if have_history:
            results = check(run_dir)
            results["valid"] = False
            results["error"] = error
    else:
        say("checking")
        results = check(run_dir)
        if run.info.get("problems"):  # the cluster did not recover: never a valid run
            results["valid"] = False
            results["problems"] = run.info["problems"]
    results.setdefault("checkers", {})
    results.setdefault("valid", False)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    report(run_dir, results)
    summarize(run, results, time.monotonic() - t0)
    if results.get("valid") and not args.keep_data:
        shutil.rmtree(run_dir / "data", ignore_errors=True)
        shutil.rmtree(run_dir / "code", ignore_errors=True)
    if error:
        return 2
    return 0 if results.get("valid") else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""How fast the web console answers each page with many jobs stored (issue 17: under 300 ms at
100,000 jobs). A measurement, not a test: run it by hand and read the table.

    python scripts/bench/console_pages.py [--jobs 100000] [--rounds 20] [--json FILE] [--keep]

Starts a 3-node cluster (default settings, fsync on) and `raftsched console` on 127.0.0.1, stores
--jobs jobs through SubmitJobs batches (names, labels and a schedule's jobs varied so the filters
have something to find; one executor runs 500 of them first, so that the states are mixed),
then loads each page --rounds times, one request at a time, and prints the median, p90 and
slowest answer per page, full page and live region (?partial=1). Every process it starts is
stopped at the end (--keep leaves the data directory).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.procs import HOST, Proc, ProcessSet, free_ports, wait_port

from raftsched.client import Client
from raftsched.v1 import admin_pb2, jobs_pb2, scheduler_pb2

J = jobs_pb2
BATCH = 1000
FINISHED = 500  # jobs the executor runs before the measurement (every state then has some)
TARGET_MS = 300.0
INFO = "(lazy part)"


def raftsched_bin() -> str:
    return str(Path(sys.executable).with_name("raftsched"))


def start_cluster(root: Path, procs: ProcessSet) -> tuple[list[str], int]:
    ports = free_ports(4)
    addresses = [f"{HOST}:{p}" for p in ports[:3]]
    peers = ",".join(f"n{i + 1}={a}" for i, a in enumerate(addresses))
    for i, address in enumerate(addresses):
        node = procs.add(Proc(f"n{i + 1}", [raftsched_bin(), "node", "--id", f"n{i + 1}", "--listen", address,
                                           "--data-dir", str(root / f"n{i + 1}"), "--peers", peers],
                              root / f"n{i + 1}.log"))
        node.start()
    return addresses, ports[3]


def wait_leader(client: Client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(n.role == admin_pb2.ROLE_LEADER for n in client.status(timeout=2).nodes):
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("no leader")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def succeeded(client: Client) -> int:
    return int(client.status(timeout=5).nodes[0].job_counts.get("SUCCEEDED", 0))


def spec(i: int) -> J.JobSpec:
    name = f"nightly-report-{i}" if i % 10_000 == 0 else f"batch-{i % 97}-item-{i}"
    labels = {"team": "search"} if i % 1000 == 0 else {}  # an executor must carry a job's labels: few have any
    return J.JobSpec(name=name, handler="noop", labels=labels, payload=f"item {i}".encode())


def store_jobs(client: Client, count: int) -> list[str]:
    """Submit `count` jobs in batches; returns a few ids (first, middle, last)."""
    started = time.monotonic()
    ids: list[str] = []
    for first in range(0, count, BATCH):
        response = client.submit_jobs([spec(i) for i in range(first, min(count, first + BATCH))], timeout=60)
        errors = [r.error for r in response.results if r.error]
        if errors:
            raise SystemExit(f"submit failed: {errors[0]}")
        ids.append(response.results[0].job.id)
        if first // BATCH % 10 == 9:
            print(f"  {first + BATCH} jobs stored ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return [ids[0], ids[len(ids) // 2], ids[-1]]


def get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
        if r.status != 200:
            raise SystemExit(f"{url} answered {r.status}")
    return (time.perf_counter() - started) * 1000


def measure(base: str, pages: dict[str, str], rounds: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, path in pages.items():
        get(base + path)  # warm: the first call opens the console's channels
        times = sorted(get(base + path) for _ in range(rounds))
        out[name] = {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
                     "max_ms": times[-1]}
    return out


def pages_to_load(ids: list[str]) -> dict[str, str]:
    first, middle, last = ids
    pages = {
        "/ (cluster)": "/",
        "/jobs": "/jobs",
        "/jobs?state=QUEUED": "/jobs?state=QUEUED",
        "/jobs?state=SUCCEEDED": "/jobs?state=SUCCEEDED",
        "/jobs?label=team=search (1 in 1000)": "/jobs?label=team%3Dsearch",
        "/jobs?name=nightly-report (1 in 10000)": "/jobs?name=nightly-report",
        "/jobs?schedule=bench-every": "/jobs?schedule=bench-every",
        "/jobs/{oldest}": f"/jobs/{first}",
        "/jobs/{middle}": f"/jobs/{middle}",
        "/jobs/{newest}": f"/jobs/{last}",
        "/executors": "/executors",
        "/schedules": "/schedules",
        "/schedules/bench-every": "/schedules/bench-every",
    }
    live = {f"{name} live region": path + ("&" if "?" in path else "?") + "partial=1"
            for name, path in pages.items() if not name.startswith("/jobs/{")}
    # Not a page of its own: the job page fetches it after loading (the cluster has no index of
    # dependents, so it walks later jobs within a 1 s budget). Shown, not held to the target.
    extra = {f"{INFO} /jobs/{{oldest}}/dependents": f"/jobs/{first}/dependents?partial=1",
             f"{INFO} /jobs/{{newest}}/dependents": f"/jobs/{last}/dependents?partial=1"}
    return {**pages, **live, **extra}


def table(results: dict[str, dict[str, float]], jobs: int) -> str:
    lines = [f"| page ({jobs:,} jobs stored) | median ms | p90 ms | max ms | under {TARGET_MS:.0f} ms |",
             "|---|---:|---:|---:|:-:|"]
    for name, r in results.items():
        ok = "(not a page)" if name.startswith(INFO) else "yes" if r["max_ms"] < TARGET_MS else "NO"
        lines.append(f"| {name} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['max_ms']:.1f} | {ok} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="console-bench-"))
    procs = ProcessSet()
    try:
        addresses, console_port = start_cluster(root, procs)
        with Client(addresses, timeout=30) as client:
            wait_leader(client)
            client.create_schedule(scheduler_pb2.ScheduleSpec(name="bench-every", every_ms=1000,
                                                              template=J.JobSpec(handler="noop")))
            print(f"storing {args.jobs:,} jobs...", file=sys.stderr, flush=True)
            ids = store_jobs(client, args.jobs)
            executor = procs.add(Proc("e1", [raftsched_bin(), "executor", "--cluster", ",".join(addresses), "--id",
                                             "e1", "--slots", "8"], root / "e1.log"))
            executor.start()
            wait_for(lambda: succeeded(client) >= FINISHED, 120, f"{FINISHED} jobs done, so the states are mixed")
            executor.stop()
            console = procs.add(Proc("console", [raftsched_bin(), "console", "--listen", f"{HOST}:{console_port}",
                                                 "--cluster", ",".join(addresses)], root / "console.log"))
            console.start()
            if not wait_port(console_port, 30):
                raise SystemExit("the console did not start: " + console.log_tail())
            counts = client.status(timeout=5).nodes[0].job_counts
            print("jobs by state: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v),
                  file=sys.stderr, flush=True)
            results = measure(f"http://{HOST}:{console_port}", pages_to_load(ids), args.rounds)
        print(table(results, args.jobs))
        if args.json:
            Path(args.json).write_text(json.dumps({"jobs": args.jobs, "rounds": args.rounds, "pages": results},
                                                  indent=2))
        return 0 if all(r["max_ms"] < TARGET_MS for n, r in results.items() if not n.startswith(INFO)) else 1
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

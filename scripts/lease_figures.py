"""Measure issue 9's figures: after an executor is cut off from the cluster, how long until its
tasks are killed, and how long until their jobs are re-queued and re-run elsewhere. Not part of
`make test`:

    .venv/bin/python scripts/lease_figures.py --runs 5 --mode blackhole

Each run starts a fresh 3-node cluster (default executor timeout 5 s, lease 3 s, kill grace 1 s,
executor heartbeat 1 s) with executors e1 and e2 behind fault-injecting proxies, runs four
ledger tasks spread over both, cuts e1 off (tests/leases/scenarios.py), and reads, per job that
ran on e1:
  killed    cut-off -> the first attempt's last ledger line (its task stopped within 100 ms of it),
            and that line against the leader's view of when e1's lease ended (when it shows one)
  requeued  cut-off -> the leader ended the first attempt as lost and re-queued the job
  rerun     cut-off -> the second attempt's first ledger line on e2
  overlap   whether the two attempts' ledger intervals overlapped (the goal: never)
and prints each run's figures and the medians over all runs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from leases.harness import end_name, started_cluster  # noqa: E402
from leases.scenarios import LongFaultRun, run_long_fault  # noqa: E402


def one_run(run_dir: Path, mode: str) -> LongFaultRun:
    c = started_cluster(run_dir / "cluster", {"e1": 4, "e2": 4})
    try:
        if mode == "pause":
            return run_long_fault(c, run_dir, lambda: c.pause_executor("e1"), lambda: c.resume_executor("e1"))
        return run_long_fault(c, run_dir, lambda: c.cut("e1", mode), lambda: c.heal("e1"))
    except BaseException:
        print(c.logs(), file=sys.stderr)
        raise
    finally:
        c.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=["blackhole", "drop", "pause"], default="blackhole",
                        help="cut e1's links (blackhole or drop), or SIGSTOP the executor process alone")
    parser.add_argument("--keep", action="store_true", help="keep the run directories (logs)")
    args = parser.parse_args(argv)

    killed: list[float] = []
    requeued: list[float] = []
    rerun: list[float] = []
    overlaps = 0
    work = Path(tempfile.mkdtemp(prefix="lease-figures-"))
    for i in range(args.runs):
        run_dir = work / f"run{i + 1}"
        run = one_run(run_dir, args.mode)
        for job in run.victims:
            lines = run.ledger[job]
            overlap = 1 in lines and 2 in lines and lines[1].last_ns >= lines[2].first_ns
            overlaps += overlap
            k, q, r = run.killed_after_s(job), run.requeued_after_s(job), run.rerun_after_s(job)
            killed.append(k)
            requeued.append(q)
            rerun.append(r)
            ends = ", ".join(f"{a.number} on {a.executor}: {end_name(a)}" for a in run.jobs[job].attempts)
            vs = (f"{(lines[1].last_ns - run.leader_lease_end_ns) / 1e6:+.0f} ms"
                  if run.leader_lease_end_ns and 1 in lines else "?")
            print(f"run {i + 1} {job}: killed {k:.2f} s ({vs} vs the leader's lease end), requeued {q:.2f} s, "
                  f"rerun {r:.2f} s, overlap {'YES' if overlap else 'no'} ({ends})", flush=True)
    print(f"\n{args.mode}, {args.runs} runs, {len(killed)} jobs cut off with their executor:")
    for label, values in (("tasks killed (last ledger line of the old attempt)", killed),
                          ("re-queued (the leader declares the executor lost)", requeued),
                          ("new attempt started (first ledger line elsewhere)", rerun)):
        print(f"  median cut-off -> {label:52} {statistics.median(values):.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f})")
    print(f"  overlapping attempts: {overlaps}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"  logs: {work}")
    return 1 if overlaps else 0


if __name__ == "__main__":
    sys.exit(main())

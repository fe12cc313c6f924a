"""The harness run end to end against a real cluster (SPEC §8): a smoke run under kill, pause and
partition faults must come out valid, and a run that reads stale from cut-off followers must be
caught (the harness has teeth). Both are bounded: 30 s and 25 s of workload plus recovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "jepsen-style" / "run.py"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run(store: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], dict, list[dict]]:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results = sorted(store.rglob("results.json"))
    histories = sorted(store.rglob("history.jsonl"))
    assert results and histories, f"no results/history written (exit {proc.returncode}): {proc.stderr[-2000:]}"
    history = [json.loads(line) for line in histories[0].read_text().splitlines() if line.strip()]
    return proc, json.loads(results[0].read_text()), history


def test_smoke_run_under_kill_pause_partition_is_valid(tmp_path: Path) -> None:
    proc, results, history = _run(
        tmp_path,
        "--nodes", "3", "--executors", "2", "--time", "30", "--seed", "7", "--nemesis-interval", "3",
        "--nemesis", "kill,pause,partition", "--recovery-timeout", "60",
        timeout=420,
    )
    bad = {name: r for name, r in results["checkers"].items() if not r.get("valid")}
    assert results["valid"] and proc.returncode == 0, f"invalid run: {json.dumps(bad)[:3000]}\n{proc.stdout[-2000:]}"
    faults = {op["f"] for op in history if op["process"] == "nemesis"}
    for kind in ("kill", "pause", "partition"):
        assert any(kind in f for f in faults), f"no {kind} fault in {sorted(faults)}"
    oks = [op for op in history if op["type"] == "ok" and op["process"] != "nemesis"]
    assert len(oks) >= 200, f"only {len(oks)} ok client operations"


def test_stale_reads_from_cut_off_followers_are_flagged(tmp_path: Path) -> None:
    """Stale reads are allowed to be stale; the checker must notice that they are."""
    proc, results, _ = _run(
        tmp_path,
        "--nodes", "3", "--executors", "1", "--time", "25", "--seed", "3",
        "--nemesis", "partition", "--nemesis-interval", "3", "--stale-reads", "--recovery-timeout", "60",
        "--noop-jobs", "0.8",  # the reads are the point: most jobs end at once, so recovery is short
        timeout=300,
    )
    assert proc.returncode == 1, f"want exit 1 (invalid), got {proc.returncode}: {proc.stdout[-1500:]}"
    assert not results["valid"]
    assert not results["checkers"]["linearizability"]["valid"], results["checkers"]["linearizability"]


@pytest.mark.skipif(not os.environ.get("RAFTSCHED_CHAOS_NEW_NEMESES"),
                    reason="about 90 s: set RAFTSCHED_CHAOS_NEW_NEMESES=1 (make test is near its time budget)")
def test_short_run_under_clock_one_way_slow_disk_is_valid(tmp_path: Path) -> None:
    proc, results, history = _run(
        tmp_path,
        "--nodes", "5", "--executors", "2", "--time", "40", "--seed", "4317", "--nemesis-interval", "3",
        "--nemesis", "clock,one-way,slow,disk", "--recovery-timeout", "60",
        timeout=420,
    )
    bad = {name: r for name, r in results["checkers"].items() if not r.get("valid")}
    assert results["valid"] and proc.returncode == 0, f"invalid run: {json.dumps(bad)[:3000]}\n{proc.stdout[-2000:]}"
    faults = {op["f"] for op in history if op["process"] == "nemesis"}
    for kind in ("clock", "one-way", "slow", "disk"):
        assert any(kind in f for f in faults), f"no {kind} fault in {sorted(faults)}"


def test_the_divergence_scenario_reaches_its_last_step_and_a_correct_leader_waits_for_its_own_entry(
        tmp_path: Path) -> None:
    """Figure 3.7 played once on the real code: the old leader, back in charge, must not move its
    commit index before its own term's entry is on the voter, so the voter (holding it) wins the
    last election, not the killed rival, and the run is valid."""
    proc, results, history = _run(
        tmp_path,
        "--nodes", "3", "--executors", "1", "--time", "20", "--seed", "5", "--nemesis", "divergence",
        "--nemesis-interval", "60", "--max-append-bytes", "1", "--recovery-timeout", "60", "--noop-jobs", "0.8",
        # 20 ops/s: the scenario needs a steady trickle of submits, not throughput. At the default 50
        # a loaded CI machine (3 test workers on 2 cores) completed 38.3/s, below the load
        # checker's 80 % share, with every other checker valid.
        "--rate", "20",
        timeout=300,
    )
    bad = {name: r for name, r in results["checkers"].items() if not r.get("valid")}
    assert results["valid"] and proc.returncode == 0, f"invalid run: {json.dumps(bad)[:3000]}\n{proc.stdout[-2000:]}"
    starts = [op["value"] for op in history if op["process"] == "nemesis" and op["f"] == "divergence"
              and op["value"].get("phase") == "start"]
    assert starts, f"no divergence scenario ran: {proc.stdout[-1500:]}"
    done = starts[0]
    assert done.get("reached") == 4, f"the scenario stopped early: {done}"
    assert done["commit_after"] is not None and done["commit_after"] >= done["own_first_entry"], done
    assert done["new_leader"] == done["voter"], done

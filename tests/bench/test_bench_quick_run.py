"""`scripts/bench/run.py --smoke` end to end (SPEC §9): the phases of --quick in shorter windows.
The harness runs every phase against a real 3-node raftsched cluster and the anchors, and writes
the table and the JSON. This is a smoke test of the harness: it never asserts speed (absolute
figures drift on shared machines); check 17 runs --quick itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quick_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench" / "run.py"), "--smoke", "--json", str(out)],
        capture_output=True, text=True, timeout=420,
    )
    assert proc.returncode == 0, f"bench failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    figures = json.loads(out.read_text())
    ours = figures["raftsched"]
    for key in ("writes", "submit_batch", "end_to_end", "failover", "executor_loss", "stream_writes", "transfer",
                "lone_submits"):
        assert key in ours, f"raftsched figures lack {key}: {sorted(ours)}"
    assert "submit_128_tput_vs_etcd" in figures["ratios"] or figures["etcd"].get("skipped"), figures["ratios"]
    for key in ("submit_128_tput_vs_floor", "stream_128_tput_vs_etcd", "submit_1_p50_vs_etcd",
                "submit_1_p50_busy_vs_idle", "e2e_tput_vs_etcd128", "submitjobs_tput_vs_etcd128",
                "failover_median_vs_etcd", "transfer_pause_ms"):
        assert key in figures["ratios"], f"SPEC §9 ratio key {key} missing: {sorted(figures['ratios'])}"
    assert ours["transfer"]["median_ms"] > 0 and ours["stream_writes"]["128"]["tput"] > 0, ours
    for anchor in ("etcd", "pysyncobj"):
        # An anchor that could not be installed here (no registry) is reported, not faked.
        assert figures[anchor] and (figures[anchor].get("skipped") or len(figures[anchor]) > 1), figures[anchor]
    assert "| figure |" in proc.stdout, "the markdown table was not printed"
    floor = figures["grpc_floor"]["writes"]
    assert floor["128"]["tput"] > 0 and floor["1"]["p50_ms"] > 0, floor
    assert "| gRPC floor |" in proc.stdout, "the table lacks the floor column"
    replicated = figures["replication_floor"]["writes"]
    assert replicated["128"]["tput"] > 0 and replicated["128"]["server_cpu_us_per_op"] > 0, replicated
    assert figures["ratios"]["replication_floor_128_tput_vs_floor"] > 0, figures["ratios"]
    assert "| replication floor |" in proc.stdout, "the table lacks the replication floor column"

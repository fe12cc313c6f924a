"""Every series the shipped alert rules and dashboard name is one a real node exports: a 3-node
cluster with an executor, a schedule, a failed job and a backup is scraped, and each metric name in
deploy/prometheus/alerts.yml and deploy/grafana/raftsched.json must be on the leader's /metrics
(histograms as their _bucket/_sum/_count samples), be a recording rule of alerts.yml, or be `up`.
The new metrics the alerts rest on are checked for plausible values on the way."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from integration.cluster import FAST, Cluster, run_cli, wait_for

from raftsched.testing.procs import free_port_range
from raftsched.v1 import jobs_pb2 as J

from .promql import SYNTHETIC, dashboard_exprs, exported_names, metric_names, recorded_names, rules

pytestmark = pytest.mark.integration


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_alerts_and_dashboard_name_only_series_a_node_exports(tmp_path: Path) -> None:
    started = time.time()
    ports = free_port_range(3)
    c = Cluster(tmp_path / "c", timing=FAST)
    try:
        port = dict(zip(c.ids, ports, strict=True))
        for nid in c.ids:
            c.node_flags = ("--metrics-listen", f"127.0.0.1:{port[nid]}")
            c.start(nid)
        c.wait_leader(30)
        c.start_executor("e1", 2)
        c.wait_executors("e1")
        r = run_cli("schedule", "create", "tick", "--every", "1s", "--handler", "noop", cluster=c.cluster)
        assert r.returncode == 0, r.stderr
        failed = c.submit(handler="fail", max_attempts=1)
        c.wait_state(failed.id, J.JOB_STATE_FAILED)
        r = run_cli("snapshot", "save", str(tmp_path / "backup.rss"), cluster=c.cluster)
        assert r.returncode == 0, r.stderr

        def leader_page() -> tuple[str, dict[str, float]] | None:
            leader = c.wait_leader(10)
            text = scrape(port[leader])
            m = samples(text)
            fired = m.get('raftsched_schedule_fired_times_total{schedule="tick"}', 0)
            return (text, m) if m.get("raftsched_is_leader") == 1 and fired >= 1 else None

        text, m = wait_for(leader_page, 15, "the leader's metrics show the schedule firing")
        exported = exported_names(text)
        allowed = exported | SYNTHETIC | recorded_names()
        unknown = {}
        for rule in rules():
            name = rule.get("alert") or rule["record"]
            named = metric_names(rule["expr"])
            assert named, f"rule {name} names no series"
            if named - allowed:
                unknown[f"alerts.yml {name}"] = sorted(named - allowed)
        for where, expr in dashboard_exprs():
            named = metric_names(expr)
            assert named, f"dashboard {where} names no series: {expr}"
            if named - allowed:
                unknown[f"raftsched.json {where}"] = sorted(named - allowed)
        assert unknown == {}, f"series no node exports (exported: {sorted(exported)})"

        # the series the alerts rest on, with values that match what happened
        assert m['raftsched_executor_state{executor="e1",state="connected"}'] == 1
        assert m['raftsched_executor_state{executor="e1",state="quarantined"}'] == 0
        assert m['raftsched_executors{state="quarantined"}'] == 0
        assert m['raftsched_jobs_ended_total{state="failed"}'] == 1
        assert m['raftsched_schedule_skipped_times_total{schedule="tick"}'] == 0
        assert m['raftsched_schedule_paused{schedule="tick"}'] == 0
        assert m['raftsched_backups_total{outcome="completed"}'] == 1
        assert started <= m["raftsched_last_backup_timestamp_seconds"] <= time.time()
        assert m["raftsched_leader_contact_age_seconds"] == 0
        leader = c.wait_leader(10)
        peers = {n for n in c.ids if n != leader}
        assert {k for k in m if k.startswith("raftsched_peer_lag_entries")} == {
            f'raftsched_peer_lag_entries{{peer="{p}"}}' for p in peers}
        follower = samples(scrape(port[min(peers)]))
        assert follower["raftsched_leader_contact_age_seconds"] < 5
        assert follower["raftsched_last_backup_timestamp_seconds"] == 0  # the leader served it
        assert follower['raftsched_schedule_fired_times_total{schedule="tick"}'] >= 1  # replicated
    finally:
        c.close()

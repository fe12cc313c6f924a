"""The shipped alert rules pass `promtool check rules` and their unit tests
(deploy/prometheus/tests/*.yml, `promtool test rules`); the dashboard's expressions parse too.
promtool comes from scripts/install-monitoring-deps.sh: without it these tests fail, saying so."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from .promql import DASHBOARD, RULE_TESTS, RULES, dashboard_exprs, metric_names, promtool, recorded_names, rules


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def test_rules_pass_promtool_check() -> None:
    r = run("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules())} rules found" in r.stdout


def test_rule_unit_tests_pass() -> None:
    files = sorted(p.name for p in RULE_TESTS.glob("*.yml"))
    assert files, f"no promtool tests in {RULE_TESTS}"
    r = run("test", "rules", *files, cwd=RULE_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(files), r.stdout


def test_every_alert_has_a_unit_test_and_a_severity() -> None:
    tested = set()
    for path in RULE_TESTS.glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:  # a test that the alert fires, not only that it stays quiet
                    tested.add(check["alertname"])
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(alerts) - tested == set(), "alerts whose firing no promtool test checks"
    assert {name for name, rule in alerts.items() if rule["labels"].get("severity") not in
            ("critical", "warning", "info")} == set()


def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    """promtool parses each dashboard query as the expression of a recording rule."""
    exprs = [expr.replace("$job", "raftsched") for _, expr in dashboard_exprs()]
    group = {"name": "dashboard", "rules": [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    r = run("check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_covers_the_asked_areas() -> None:
    text = DASHBOARD.read_text()
    for title in ("Cluster", "Raft: commit and apply", "Storage: fsync, log, snapshots", "Jobs", "Executors",
                  "Schedules", "Backups"):
        assert f'"title": "{title}"' in text, title
    named = set().union(*(metric_names(e) for _, e in dashboard_exprs()))
    assert {"raftsched_is_leader", "raftsched_commit_index", "raftsched_fsync_seconds_bucket", "raftsched_jobs",
            "raftsched_executors", "raftsched_schedule_fired_times_total"} <= named
    assert recorded_names() & named  # the recorded series are used, not only the raw ones


def test_metric_names_finds_selected_series_only() -> None:
    """The lexer the name check rests on: functions, keywords, labels, durations and numbers are
    not names; every selected series is."""
    expr = ('histogram_quantile(0.99, sum by (le, instance) (rate(raftsched_fsync_seconds_bucket{job=~"$job",'
            'le!="+Inf"}[5m]))) > 0.1 and on (job) max without (instance) (raftsched_no_such_thing offset 5m) '
            '- ignoring (instance) group_right raftsched_applied_index > 1e3 unless up{job="x"} == bool 0 '
            'or time() - job:raftsched_last_backup_timestamp_seconds:max3d[1h:5m] > 26 * 3600')
    assert metric_names(expr) == {"raftsched_fsync_seconds_bucket", "raftsched_no_such_thing",
                                  "raftsched_applied_index", "up", "job:raftsched_last_backup_timestamp_seconds:max3d"}

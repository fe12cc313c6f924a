"""check_all over a run directory, crash isolation, and the report files."""

from __future__ import annotations

import json
from pathlib import Path

from checkers import check_all, check_run
from checkers.rundata import Run
from report import write_report

from .builders import RUN_INFO, HistoryBuilder, final_state, job, ledger_line


def _write_run(run_dir: Path, *, with_final_state: bool = True) -> None:
    h = (HistoryBuilder().submit(0, "k1", "j1", 0, 5).submit(1, "k2", None, 1, 900, type_="info")
         .fault("kill-leader", 100, 300, ["n1"]).fault("partition-majority", 400, 700, ["n2"])
         .get(0, "j1", "RUNNING", 1, 10, 20).get(2, "j1", "QUEUED", 1, 30, 40, type_="fail")
         .submit(0, "k3", "j3", 310, 350).cancel(2, "j3", "CANCELLED", 360, 380)
         .get(0, "j1", "SUCCEEDED", 1, 800, 805, stale=True))
    (run_dir / "history.jsonl").write_text("".join(json.dumps(ev) + "\n" for ev in h.build()))
    logs = {n: {"commit_index": 1, "first_index": 1, "entries": [[1, 1, "ENTRY_TYPE_NORMAL", "YQ=="]]}
            for n in ("n1", "n2", "n3")}
    state = final_state(job("j1", "SUCCEEDED", [(1, "e1", "SUCCEEDED")], key="k1"),
                        job("j3", "CANCELLED", key="k3"), logs=logs)
    if with_final_state:
        (run_dir / "final_state.json").write_text(json.dumps(state))
    (run_dir / "ledger.txt").write_text(ledger_line("j1", 1, "e1", 12) + "\n")
    (run_dir / "run.json").write_text(json.dumps(RUN_INFO))


def test_check_all_on_a_valid_run(tmp_path: Path) -> None:
    _write_run(tmp_path)
    results = check_all(tmp_path)
    bad = {name: r for name, r in results["checkers"].items() if not r["valid"]}
    assert results["valid"], bad
    assert set(results["checkers"]) == {"lost_writes", "idempotency", "monotonic_states", "linearizability",
                                        "fencing", "no_overlap", "log_prefix", "elections", "schedules", "liveness",
                                        "figures", "load"}
    json.dumps(results, allow_nan=False)  # results.json must be plain JSON


def test_a_missing_file_fails_only_the_checkers_that_read_it(tmp_path: Path) -> None:
    _write_run(tmp_path, with_final_state=False)
    results = check_all(tmp_path)
    assert not results["valid"]
    assert "FileNotFoundError" in results["checkers"]["lost_writes"]["error"]
    assert results["checkers"]["monotonic_states"]["valid"]


def test_a_crashing_checker_is_reported_as_invalid_not_raised() -> None:
    def explode(run: Run) -> dict:
        raise KeyError("boom")

    results = check_run(Run.from_parts(), {"explode": explode, "fine": lambda run: {"valid": True}})
    assert not results["valid"]
    assert results["checkers"]["explode"]["error"] == "KeyError: 'boom'"
    assert results["checkers"]["explode"]["where"][-1].endswith("in explode")
    assert results["checkers"]["fine"] == {"valid": True}


def test_the_report_writes_a_png_and_a_page_and_returns_a_summary(tmp_path: Path) -> None:
    _write_run(tmp_path)
    results = check_all(tmp_path)
    summary = write_report(tmp_path, results)
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "linearizability" in page
    assert summary.startswith("verdict: VALID")
    assert "submit info=1 ok=2" in summary and "kill-leader x1" in summary and "failover: 1 windows" in summary


def test_the_report_survives_an_empty_history_and_a_failed_run(tmp_path: Path) -> None:
    (tmp_path / "history.jsonl").write_text("")
    summary = write_report(tmp_path, {"valid": False, "checkers": {}, "error": "harness: no leader"})
    assert "INVALID" in summary and "no leader" in summary
    assert not (tmp_path / "report.png").exists() and (tmp_path / "report.html").exists()

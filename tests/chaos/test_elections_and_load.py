"""The elections checker (from node logs) and the load checker, on hand-written runs."""

from __future__ import annotations

from pathlib import Path

from checkers import elections, load
from checkers.rundata import Run

ROLE = "2026-12-05 06:00:00,000 INFO [{n}] raftsched.raft: node {n}: {role} in term {t}, leader -"
STORED = "INFO [{n}] raftsched.raft: node {n}: starting from stored term {t}, vote {v}, commit 0"
START = "--- harness: start #{k} at 1.0: raftsched node --id {n}"


def _run(tmp: Path, logs: dict[str, list[str]], history: list[dict] | None = None) -> Run:
    (tmp / "logs").mkdir()
    for node, lines in logs.items():
        (tmp / "logs" / f"{node}.log").write_text("\n".join(lines) + "\n")
    run = Run.from_parts(history=history or [])
    run.run_dir = tmp
    return run


def test_clean_restarts_are_valid(tmp_path: Path) -> None:
    run = _run(tmp_path, {"n1": [START.format(k=1, n="n1"), STORED.format(n="n1", t=0, v="-"),
                                 ROLE.format(n="n1", role="CANDIDATE", t=3), ROLE.format(n="n1", role="LEADER", t=3),
                                 START.format(k=2, n="n1"), STORED.format(n="n1", t=3, v="n1")],
                          "n2": [ROLE.format(n="n2", role="LEADER", t=4)]})
    assert elections.check(run)["valid"]


def test_two_leaders_a_lost_term_and_a_lost_vote_are_found(tmp_path: Path) -> None:
    run = _run(tmp_path, {"n1": [ROLE.format(n="n1", role="LEADER", t=3), START.format(k=2, n="n1"),
                                 STORED.format(n="n1", t=3, v="-")],
                          "n2": [ROLE.format(n="n2", role="LEADER", t=3), ROLE.format(n="n2", role="FOLLOWER", t=5),
                                 START.format(k=2, n="n2"), STORED.format(n="n2", t=4, v="n1")]})
    result = elections.check(run)
    assert not result["valid"]
    assert result["violations"] == {"two leaders in one term": 1, "hard state lost": 1, "vote lost": 1}


def test_a_disk_fault_excuses_what_its_node_forgot(tmp_path: Path) -> None:
    disk = [{"index": 0, "time": 1, "process": "nemesis", "type": "invoke", "f": "disk-delete",
             "value": {"phase": "start", "targets": ["n2"]}}]
    run = _run(tmp_path, {"n2": [ROLE.format(n="n2", role="LEADER", t=5), START.format(k=2, n="n2"),
                                 STORED.format(n="n2", t=0, v="-")]}, disk)
    assert elections.check(run)["valid"]


def test_load_under_eighty_percent_of_the_target_is_invalid() -> None:
    def ops(n: int) -> list[dict]:
        out = []
        for i in range(n):
            out.append({"index": 2 * i, "time": i, "process": 0, "type": "invoke", "f": "get", "value": {"id": "j"}})
            out.append({"index": 2 * i + 1, "time": i, "process": 0, "type": "ok", "f": "get",
                        "value": {"id": "j", "state": "NOT_FOUND", "attempt": 0}})
        return out

    info = {"options": {"rate": 10, "time": 10}}
    assert load.check(Run.from_parts(history=ops(80), info=info))["valid"]
    assert not load.check(Run.from_parts(history=ops(79), info=info))["valid"]
    assert load.check(Run.from_parts(history=ops(1)))["valid"]  # no target: not judged

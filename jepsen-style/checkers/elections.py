"""Raft's election safety and durable hard state, from the nodes' own logs (logs/nI.log).

Each node logs a line at every role change ("node n1: LEADER in term 7, leader n1") and, at each
start, the hard state it loaded ("node n1: starting from stored term 7, vote n3, commit 120").

- two leaders in one term: two nodes logged LEADER in the same term (§5.2: at most one);
- hard state lost: a node started from a term lower than one it had logged before that start,
  though no disk fault (whose damage may legitimately lose it) hit that node in between;
- vote lost: a node started in a term it had been CANDIDATE or LEADER in (so it had voted for
  itself), with no vote or another vote stored.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from .evidence import examples
from .rundata import Run

ROLE = re.compile(r"node (\S+): (LEADER|FOLLOWER|CANDIDATE|PRE_CANDIDATE) in term (\d+)")
STORED = re.compile(r"node (\S+): starting from stored term (\d+), vote (\S+)")
START = "--- harness: start #"


def check(run: Run) -> dict[str, Any]:
    logs = _logs(run)
    if not logs:
        return {"valid": True, "note": "no node logs in this run"}
    leaders: dict[int, set[str]] = defaultdict(set)
    violations: list[dict[str, Any]] = []
    disked = _disk_faulted(run)
    starts = 0
    for node, lines in sorted(logs.items()):
        highest = 0
        generation = 0
        self_votes: set[int] = set()  # terms in which this node campaigned (voted for itself)
        for line in lines:
            if line.startswith(START):
                generation += 1
                continue
            m = ROLE.search(line)
            if m and m.group(1) == node:
                term = int(m.group(3))
                highest = max(highest, term)
                if m.group(2) == "LEADER":
                    leaders[term].add(node)
                if m.group(2) in ("LEADER", "CANDIDATE"):
                    self_votes.add(term)
                continue
            s = STORED.search(line)
            if s and s.group(1) == node:
                starts += 1
                stored = int(s.group(2))
                if stored < highest and node not in disked:
                    violations.append({"kind": "hard state lost", "node": node, "start": generation,
                                       "stored_term": stored, "term_before": highest})
                vote = s.group(3).rstrip(",")
                if stored in self_votes and vote != node and node not in disked:
                    violations.append({"kind": "vote lost", "node": node, "start": generation,
                                       "stored_term": stored, "stored_vote": vote})
                if node in disked:
                    highest = stored
                    self_votes = set()  # after a disk fault only what it stores from now on counts
    for term, nodes in sorted(leaders.items()):
        if len(nodes) > 1:
            violations.append({"kind": "two leaders in one term", "term": term, "nodes": sorted(nodes)})
    kinds: dict[str, int] = defaultdict(int)
    for v in violations:
        kinds[v["kind"]] += 1
    return {"valid": not violations, "terms_with_leader": len(leaders), "starts_seen": starts,
            "violations": dict(kinds), "examples": examples(violations)}


def _logs(run: Run) -> dict[str, list[str]]:
    if run.run_dir is None:
        return {}
    out = {}
    for path in sorted((run.run_dir / "logs").glob("n*.log")):
        out[path.stem] = path.read_text(errors="replace").splitlines()
    return out


def _disk_faulted(run: Run) -> set[str]:
    return {t for w in run.nemesis if str(w.f).startswith("disk") for t in w.targets}

"""Promise 7: every node's committed log is a prefix of the longest one.

For every index inside two nodes' committed ranges ([first_index, commit_index] of the entries
each holds), term, type and data must be identical. Within one node, terms never decrease.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

from .evidence import examples
from .rundata import Run

Entry = tuple[int, str, str]  # term, type, data


def check(run: Run) -> dict[str, Any]:
    logs = run.final_state.get("logs") or {}
    committed = {str(node): _committed(log) for node, log in logs.items()}
    by_index: dict[int, dict[str, Entry]] = defaultdict(dict)
    for node, entries in committed.items():
        for index, entry in entries.items():
            by_index[index][node] = entry
    shared = {i: nodes for i, nodes in by_index.items() if len(nodes) > 1}
    divergent = [i for i in sorted(shared) if len(set(shared[i].values())) > 1]
    decreasing = [d for node, entries in committed.items() for d in _term_decreases(node, entries)]
    out: dict[str, Any] = {
        "valid": not divergent and not decreasing,
        "nodes": len(committed),
        "commit_index": {node: int(log.get("commit_index", 0)) for node, log in logs.items()},
        "compared_indexes": len(shared),
        "divergent": len(divergent),
        "first_divergent_index": divergent[0] if divergent else None,
        "term_decreases": len(decreasing),
        "examples": examples(
            [{"index": i, "nodes": {n: _show(e) for n, e in sorted(shared[i].items())}} for i in divergent]
            + decreasing
        ),
    }
    unread = sorted(str(node) for node, log in logs.items() if log.get("error"))
    if unread:
        out["unreadable_nodes"] = unread
    if len(committed) - len(unread) < 2:
        out["note"] = "fewer than two nodes' logs were read: nothing to compare"
    return out


def _committed(log: dict[str, Any]) -> dict[int, Entry]:
    first = int(log.get("first_index", 0))
    commit = int(log.get("commit_index", 0))
    out: dict[int, Entry] = {}
    for index, term, kind, data in log.get("entries") or []:
        if first <= int(index) <= commit:
            out[int(index)] = (int(term), str(kind), str(data))
    return out


def _term_decreases(node: str, entries: dict[int, Entry]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    previous: tuple[int, int] | None = None
    for index in sorted(entries):
        term = entries[index][0]
        if previous is not None and term < previous[1]:
            out.append({"node": node, "index": index, "term": term, "previous_index": previous[0],
                        "previous_term": previous[1]})
        previous = (index, term)
    return out


def _show(entry: Entry) -> dict[str, Any]:
    term, kind, data = entry
    digest = hashlib.sha256(data.encode()).hexdigest()[:12]
    return {"term": term, "type": kind, "data_sha256": digest, "data_head": data[:24]}

"""Small, bounded evidence: at most MAX_EXAMPLES examples next to the full counts."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

MAX_EXAMPLES = 10


def examples(items: Iterable[dict[str, Any]], limit: int = MAX_EXAMPLES) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if len(out) >= limit:
            break
        out.append(item)
    return out


def stats_ms(values_ns: Sequence[float]) -> dict[str, Any]:
    """count, median and max of durations given in ns, reported in ms."""
    if not values_ns:
        return {"count": 0, "median_ms": None, "max_ms": None}
    return {
        "count": len(values_ns),
        "median_ms": round(statistics.median(values_ns) / 1e6, 3),
        "max_ms": round(max(values_ns) / 1e6, 3),
    }


def submit_ids(ops: Iterable[Any]) -> dict[str, list[Any]]:
    """Job id -> the ok submit ops that returned it."""
    out: dict[str, list[Any]] = {}
    for op in ops:
        if op.f == "submit" and op.ok and op.field("id") is not None:
            out.setdefault(str(op.field("id")), []).append(op)
    return out

"""Enough load to prove something: a run whose clients completed fewer than MIN_SHARE of the
operations its target rate asked for (--rate over --time, from run.json) is invalid. A run
without those options (a hand-built one) is not judged."""

from __future__ import annotations

from typing import Any

from .rundata import Run

MIN_SHARE = 0.8


def check(run: Run) -> dict[str, Any]:
    options = run.info.get("options") or {}
    rate, seconds = options.get("rate"), options.get("time")
    if not isinstance(rate, int | float) or not isinstance(seconds, int | float) or seconds <= 0:
        return {"valid": True, "note": "no target rate in run.json"}
    done = sum(1 for op in run.ops if op.complete_time is not None and op.f in ("submit", "get", "cancel"))
    achieved = done / seconds
    return {"valid": achieved >= MIN_SHARE * rate, "target_ops_per_s": rate, "ops_per_s": round(achieved, 1),
            "completed_ops": done, "min_share": MIN_SHARE}

"""Promise 2: one idempotency key yields one job, in the history and in the final state."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .evidence import examples
from .rundata import Run


def check(run: Run) -> dict[str, Any]:
    from_history: dict[str, dict[str, int]] = defaultdict(dict)  # key -> {id: first ok op index}
    for op in run.ops:
        key, job_id = op.field("key"), op.field("id")
        if op.f == "submit" and op.ok and key is not None and job_id is not None:
            from_history[str(key)].setdefault(str(job_id), op.invoke_index)
    from_final: dict[str, list[str]] = defaultdict(list)
    for job in run.jobs.values():
        if job.idempotency_key:
            from_final[job.idempotency_key].append(job.id)
    dup_history = {k: ids for k, ids in from_history.items() if len(ids) > 1}
    dup_final = {k: sorted(ids) for k, ids in from_final.items() if len(ids) > 1}
    return {
        "valid": not dup_history and not dup_final,
        "keys": len(from_history),
        "duplicate_keys_in_history": len(dup_history),
        "duplicate_keys_in_final_state": len(dup_final),
        "examples": examples(
            [{"key": k, "ids_by_submit_index": ids, "where": "history"} for k, ids in dup_history.items()]
            + [{"key": k, "ids": ids, "where": "final_state"} for k, ids in dup_final.items()]
        ),
    }

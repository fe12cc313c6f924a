"""Promise 1: a SubmitJob that returned OK is never lost."""

from __future__ import annotations

from typing import Any

from .evidence import examples, submit_ids
from .rundata import Run


def check(run: Run) -> dict[str, Any]:
    acknowledged = submit_ids(run.ops)
    jobs = run.jobs
    lost = [(job_id, ops[0]) for job_id, ops in acknowledged.items() if job_id not in jobs]
    return {
        "valid": not lost,
        "acknowledged": len(acknowledged),
        "lost": len(lost),
        "examples": examples(
            {"id": job_id, "key": op.field("key"), "index": op.invoke_index, "complete_index": op.complete_index}
            for job_id, op in lost
        ),
    }

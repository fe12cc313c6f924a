"""Per-job linearizability of submits, gets (stale ones included) and cancels.

Each job's operations are checked separately (linearizability is compositional) against
`lin_model.JobModel` with the search of `lin_search`. Operations that failed had no effect and are
left out; `info` operations (outcome unknown) may take effect at any point after their call, or
never. A job whose search hits its time bound counts as unknown: the verdict stays valid and the
evidence says how many jobs the checker gave up on.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .evidence import examples
from .history import Op
from .lin_model import START, UNKNOWN, JobModel, JobOp, JobState, describe
from .lin_search import SearchOp, SearchResult, SearchTimeout, search
from .rundata import Run

PER_JOB_SECONDS = 5.0
TOTAL_SECONDS = 60.0


@dataclass(frozen=True)
class JobHistory:
    job: str
    ops: list[Op]  # the history's ops; job_ops and search_ops are parallel to it
    job_ops: list[JobOp]
    search_ops: list[SearchOp]
    has_create: bool
    cancel_gated: bool


def check(
    run: Run, *, per_job_seconds: float = PER_JOB_SECONDS, total_seconds: float = TOTAL_SECONDS
) -> dict[str, Any]:
    histories = job_histories(run.ops)
    jobs = run.jobs
    deadline = time.monotonic() + total_seconds
    failures: list[dict[str, Any]] = []
    unknown: list[str] = []
    linearizable = configurations = 0
    skipped = [h.job for h in histories if not h.has_create]
    for h in histories:
        if not h.has_create:
            continue
        now = time.monotonic()
        if now >= deadline:
            unknown.append(h.job)
            continue
        model = JobModel(jobs.get(h.job), cancel_gated=h.cancel_gated)
        try:
            result = search(h.search_ops, model, START, min(deadline, now + per_job_seconds))
        except SearchTimeout:
            unknown.append(h.job)
            continue
        configurations += result.configurations
        if result.linearizable:
            linearizable += 1
        else:
            failures.append(_failure(h, model, result))
    out: dict[str, Any] = {
        "valid": not failures,
        "jobs": len(histories) - len(skipped),
        "ops": sum(len(h.ops) for h in histories if h.has_create),
        "linearizable": linearizable,
        "non_linearizable": len(failures),
        "unknown": len(unknown),
        "configurations": configurations,
        "failures": examples(failures),
    }
    if unknown:
        bound = f"time bound {per_job_seconds} s per job, {total_seconds} s in all"
        out["note"] = f"gave up on {len(unknown)} jobs ({bound})"
        out["unknown_jobs"] = unknown[:10]
    if skipped:
        out["ids_never_submitted"] = len(skipped)  # gets and cancels of ids no submit returned
    return out


def job_histories(ops: list[Op]) -> list[JobHistory]:
    """Each job's operations: the submits of its key, and the gets and cancels naming it."""
    submits_by_key: dict[str, list[Op]] = defaultdict(list)
    keys_of: dict[str, set[str]] = defaultdict(set)
    by_id: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.f == "submit" and op.field("key") is not None:
            submits_by_key[str(op.field("key"))].append(op)
            if op.ok and op.field("id") is not None:
                keys_of[str(op.field("id"))].add(str(op.field("key")))
        elif op.f in ("get", "cancel") and op.field("id") is not None:
            by_id[str(op.field("id"))].append(op)
    out = []
    for job in sorted(set(keys_of) | set(by_id)):
        submits = [op for key in sorted(keys_of[job]) for op in submits_by_key[key]]
        out.append(_job_history(job, submits, by_id[job]))
    return out


def _job_history(job: str, submits: list[Op], others: list[Op]) -> JobHistory:
    chosen: list[tuple[Op, JobOp]] = []
    for op in submits:
        if (op.ok and str(op.field("id")) == job) or op.type == "info":
            chosen.append((op, JobOp("create", UNKNOWN, 0)))
    for op in others:
        if op.type == "fail" or (op.f == "get" and not op.ok):
            continue  # no effect, or a read that observed nothing
        state = str(op.field("state", UNKNOWN) if op.ok else UNKNOWN).removeprefix("JOB_STATE_")
        kind = "read" if op.f == "get" else "cancel"
        chosen.append((op, JobOp(kind, state, int(op.field("attempt", 0) or 0))))
    chosen.sort(key=lambda pair: pair[0].invoke_index)
    search_ops = [SearchOp(op.invoke_time, op.end, not op.ok, job_op) for op, job_op in chosen]
    return JobHistory(
        job=job,
        ops=[op for op, _ in chosen],
        job_ops=[job_op for _, job_op in chosen],
        search_ops=search_ops,
        has_create=any(j.kind == "create" for _, j in chosen),
        cancel_gated=any(j.kind == "cancel" for _, j in chosen),
    )


def _failure(h: JobHistory, model: JobModel, result: SearchResult) -> dict[str, Any]:
    state: JobState = START
    for i in result.longest_prefix:
        state = model.step(state, h.job_ops[i]) or state
    stuck = h.ops[result.stuck_on] if result.stuck_on is not None else None
    reason = "no linearization exists"
    if stuck is not None and result.stuck_on is not None:
        payload = h.job_ops[result.stuck_on]
        if payload.kind != "create" and payload.state and not model.possible(payload.state, payload.attempt):
            final = model.final
            reason = (f"op {stuck.invoke_index} observed {payload.state} attempt {payload.attempt}, which the job "
                      f"never had (final state {final.state if final else '?'}, last attempt "
                      f"{final.last_attempt if final else '?'})")
        else:
            reason = (f"op {stuck.invoke_index} cannot take effect in any order respecting real time; the longest "
                      f"consistent prefix ({len(result.longest_prefix)} ops) leaves the job {describe(state)}")
    return {
        "id": h.job,
        "reason": reason,
        "stuck_on": _brief(stuck) if stuck is not None else None,
        "linearized_before": [_brief(h.ops[i]) for i in result.longest_prefix[-5:]],
        "ops_of_job": len(h.ops),
    }


def _brief(op: Op) -> dict[str, Any]:
    out = {"index": op.invoke_index, "f": op.f, "type": op.type, "process": op.process,
           "invoke_time": op.invoke_time, "complete_time": op.complete_time}
    if op.f == "get":
        out["stale"] = bool(op.field("stale", False))
    if op.ok and isinstance(op.value, dict):
        out.update({k: v for k, v in op.value.items() if k in ("state", "attempt", "id")})
    return out

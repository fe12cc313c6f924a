"""Promise 4: the recorded outcome is exactly-once and comes from the current attempt.

A SUCCEEDED job's successful attempt must be its last attempt and its only successful one, and
the executor must actually have started it (a ledger line for that job and attempt). Jobs in any
other state must have no successful attempt. A recorded result must be that attempt's own: the
workload's task ends its output with "ran JOB ATTEMPT EXECUTOR", which must name the attempt it is
recorded on (a stale result applied to a newer attempt names the older one). Stale results the
leader refused are totalled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .evidence import examples
from .rundata import Run
from .states import JobView


def check(run: Run) -> dict[str, Any]:
    executed = {(line.job, line.attempt) for line in run.ledger}
    problems = [p for job in run.jobs.values() for p in _problems(job, executed)]
    kinds = [p["problem"] for p in problems]
    jobs = run.jobs.values()
    return {
        "valid": not problems,
        "succeeded": sum(job.state == "SUCCEEDED" for job in jobs),
        "success_not_last_attempt": kinds.count("success_not_last_attempt"),
        "several_successes": kinds.count("several_successes"),
        "success_without_execution": kinds.count("success_without_execution"),
        "success_but_not_succeeded": kinds.count("success_but_not_succeeded"),
        "result_of_another_attempt": kinds.count("result_of_another_attempt"),
        "stale_results_refused": sum(job.stale_results_refused for job in jobs),
        "jobs_with_stale_refusals": sum(job.stale_results_refused > 0 for job in jobs),
        "ledger_lines": len(run.ledger),
        "examples": examples(problems),
    }


def _problems(job: JobView, executed: set[tuple[str, int]]) -> Iterator[dict[str, Any]]:
    wins = [a.number for a in job.attempts if a.end == "SUCCEEDED"]
    base = {"id": job.id, "state": job.state, "successful_attempts": wins, "last_attempt": job.last_attempt}
    for a in job.attempts:
        ran = _ran_line(a.output)
        if ran is not None and ran != (job.id, str(a.number), a.executor):
            yield {**base, "problem": "result_of_another_attempt", "attempt": a.number, "executor": a.executor,
                   "output_says": " ".join(ran)}
    if job.state != "SUCCEEDED":
        if wins:
            yield {**base, "problem": "success_but_not_succeeded"}
        return
    if len(wins) > 1:
        yield {**base, "problem": "several_successes"}
    if not wins or wins[-1] != job.last_attempt:
        yield {**base, "problem": "success_not_last_attempt"}
    for number in wins if not job.handler else ():  # a handler job (--noop-jobs) leaves no ledger line
        if (job.id, number) not in executed:
            yield {**base, "problem": "success_without_execution", "attempt": number}


def _ran_line(output: str) -> tuple[str, str, str] | None:
    """(job, attempt, executor) of the task's last "ran" line, None without one."""
    for line in reversed(output.splitlines()):
        parts = line.split()
        if len(parts) == 4 and parts[0] == "ran":
            return parts[1], parts[2], parts[3]
    return None

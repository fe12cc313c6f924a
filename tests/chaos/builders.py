"""Hand-written histories, final states and ledgers for the checker tests.

Times are given in ms and written as ns. Events are sorted by time and then indexed, as the
runner's single History would have numbered them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MS = 1_000_000
ORIGIN_NS = 10**12  # the monotonic clock at history time 0 (run.json's clock origin)


@dataclass
class HistoryBuilder:
    events: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)  # (time, seq, event)

    def op(self, process: int | str, f: str, start_ms: float, end_ms: float | None, type_: str,
           invoke: Any, done: Any) -> HistoryBuilder:
        self._add(start_ms, {"process": process, "type": "invoke", "f": f, "value": invoke})
        if end_ms is not None:
            self._add(end_ms, {"process": process, "type": type_, "f": f, "value": done})
        return self

    def submit(self, process: int, key: str, job: str | None, start: float, end: float | None,
               type_: str = "ok") -> HistoryBuilder:
        done = {"key": key, "id": job} if type_ == "ok" else {"key": key}
        return self.op(process, "submit", start, end, type_, {"key": key}, done)

    def get(self, process: int, job: str, state: str, attempt: int, start: float, end: float,
            stale: bool = False, type_: str = "ok") -> HistoryBuilder:
        done = {"id": job, "state": state, "attempt": attempt} if type_ == "ok" else {"id": job}
        return self.op(process, "get", start, end, type_, {"id": job, "stale": stale}, done)

    def cancel(self, process: int, job: str, state: str | None, start: float, end: float | None,
               type_: str = "ok", attempt: int = 0) -> HistoryBuilder:
        done = {"id": job, "state": state, "attempt": attempt} if type_ == "ok" else {"id": job}
        return self.op(process, "cancel", start, end, type_, {"id": job}, done)

    def fault(self, f: str, start: float, end: float, targets: list[str], **extra: Any) -> HistoryBuilder:
        self._add(start, {"process": "nemesis", "type": "invoke", "f": f,
                          "value": {"phase": "start", "targets": targets, **extra}})
        self._add(end, {"process": "nemesis", "type": "info", "f": f, "value": {"phase": "end", "targets": targets}})
        return self

    def _add(self, ms: float, event: dict[str, Any]) -> None:
        self.events.append((int(ms * MS), len(self.events), event))

    def build(self) -> list[dict[str, Any]]:
        ordered = sorted(self.events, key=lambda e: (e[0], e[1]))
        return [{"index": i, "time": t, **ev} for i, (t, _, ev) in enumerate(ordered)]


def job(job_id: str, state: str, attempts: Sequence[tuple[int, str, str]] = (), key: str = "",
        stale_refused: int = 0) -> dict[str, Any]:
    """A Job as MessageToDict writes it (defaults omitted)."""
    out: dict[str, Any] = {"id": job_id, "state": f"JOB_STATE_{state}", "spec": {}}
    if key:
        out["spec"]["idempotencyKey"] = key
    if attempts:
        out["attempts"] = [{"number": n, "executor": ex, "startedMs": "1000"} | (
            {"end": f"ATTEMPT_END_{end}"} if end != "UNSPECIFIED" else {}) for n, ex, end in attempts]
    if stale_refused:
        out["staleResultsRefused"] = stale_refused
    return out


def final_state(*jobs: dict[str, Any], logs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jobs": {j["id"]: j for j in jobs}, "logs": logs or {}, "status": []}


def ledger_line(job_id: str, attempt: int, executor: str, ms: float) -> str:
    return f"{job_id} {attempt} {executor} {ORIGIN_NS + int(ms * MS)}"


RUN_INFO = {"seed": 1, "clock": {"history_start_monotonic_ns": ORIGIN_NS, "wall_minus_monotonic_ns": 5}}

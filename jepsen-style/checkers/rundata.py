"""Everything a checker reads about one run, loaded lazily from the run directory.

Each part loads on first use, so a missing or corrupt file fails only the checkers that read it.
Tests build a `Run` from hand-written parts with `Run.from_parts`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .history import Event, NemesisWindow, Op, pair_nemesis, pair_ops
from .ledger import LedgerLine, parse_ledger
from .states import JobView, job_view

HISTORY = "history.jsonl"
LEDGER = "ledger.txt"
FINAL_STATE = "final_state.json"
RUN_INFO = "run.json"


@dataclass
class Run:
    load_events: Callable[[], list[Event]]
    load_final_state: Callable[[], dict[str, Any]]
    load_ledger_text: Callable[[], list[str]]
    load_info: Callable[[], dict[str, Any]]
    run_dir: Path | None = None  # where the run's other files are (logs/), when read from a directory

    @classmethod
    def from_dir(cls, run_dir: Path) -> Run:
        return cls(
            load_events=lambda: read_history(run_dir / HISTORY),
            load_final_state=lambda: json.loads((run_dir / FINAL_STATE).read_text()),
            load_ledger_text=lambda: _read_lines_or_empty(run_dir / LEDGER),
            load_info=lambda: json.loads((run_dir / RUN_INFO).read_text()) if (run_dir / RUN_INFO).exists() else {},
            run_dir=run_dir,
        )

    @classmethod
    def from_parts(
        cls,
        *,
        history: Iterable[Event] = (),
        final_state: dict[str, Any] | None = None,
        ledger: Iterable[str] = (),
        info: dict[str, Any] | None = None,
    ) -> Run:
        events, lines = list(history), list(ledger)
        final = final_state if final_state is not None else {"jobs": {}, "logs": {}}
        return cls(lambda: events, lambda: final, lambda: lines, lambda: dict(info or {}))

    @cached_property
    def events(self) -> list[Event]:
        return self.load_events()

    @cached_property
    def ops(self) -> list[Op]:
        return pair_ops(self.events)

    @cached_property
    def nemesis(self) -> list[NemesisWindow]:
        return pair_nemesis(self.events)

    @cached_property
    def final_state(self) -> dict[str, Any]:
        return self.load_final_state()

    @cached_property
    def jobs(self) -> dict[str, JobView]:
        raw = self.final_state.get("jobs")
        if not isinstance(raw, dict):
            raise ValueError(f"{FINAL_STATE} has no 'jobs' object")
        return {str(job_id): job_view(str(job_id), job) for job_id, job in raw.items()}

    @cached_property
    def _ledger(self) -> tuple[list[LedgerLine], int]:
        return parse_ledger(self.load_ledger_text())

    @property
    def ledger(self) -> list[LedgerLine]:
        return self._ledger[0]

    @property
    def ledger_malformed(self) -> int:
        return self._ledger[1]

    @cached_property
    def ledger_heartbeats(self) -> bool:
        """Whether the ledger has more than start lines (some attempt has several lines)."""
        return len({(line.job, line.attempt) for line in self.ledger}) < len(self.ledger)

    @cached_property
    def info(self) -> dict[str, Any]:
        return self.load_info()

    @cached_property
    def ledger_offset_ns(self) -> int | None:
        """Subtract from a ledger time to get a history time; None when run.json does not say."""
        return monotonic_origin(self.info)

    def ledger_to_history(self, ns: int) -> int | None:
        offset = self.ledger_offset_ns
        return None if offset is None else ns - offset


def read_history(path: Path) -> list[Event]:
    events: list[Event] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path.name} line {number}: {err}") from err
    return events


def _read_lines_or_empty(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def monotonic_origin(info: dict[str, Any]) -> int | None:
    """The monotonic-clock reading (ns) at history time 0, from run.json.

    The runner writes `{"clock": {"history_start_monotonic_ns": N}}`; a top-level or otherwise
    nested integer named like `*start*monotonic*` is accepted too.
    """
    clock = info.get("clock")
    if isinstance(clock, dict) and _is_int(clock.get("history_start_monotonic_ns")):
        return int(clock["history_start_monotonic_ns"])
    scopes = [info] + [v for v in info.values() if isinstance(v, dict)]
    for scope in scopes:
        for key, value in scope.items():
            if "monotonic" in key and "start" in key and _is_int(value):
                return int(value)
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

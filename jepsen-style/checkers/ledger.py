"""The execution ledger: `job attempt executor monotonic_ns`, one line per task start or heartbeat."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LedgerLine:
    job: str
    attempt: int
    executor: str
    ns: int


@dataclass(frozen=True)
class Interval:
    """One attempt's execution as the ledger saw it: its first and last line."""

    job: str
    attempt: int
    executor: str
    first: int
    last: int
    lines: int


def parse_ledger(lines: Iterable[str]) -> tuple[list[LedgerLine], int]:
    """Parsed lines and the number of malformed ones (a process killed mid-write leaves one)."""
    parsed: list[LedgerLine] = []
    malformed = 0
    for raw in lines:
        parts = raw.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 4 or not parts[1].isdigit() or not parts[3].lstrip("-").isdigit():
            malformed += 1
            continue
        parsed.append(LedgerLine(parts[0], int(parts[1]), parts[2], int(parts[3])))
    return parsed, malformed


def intervals(lines: Iterable[LedgerLine]) -> dict[tuple[str, int], Interval]:
    """(job, attempt) -> its interval. An attempt seen on two executors keeps the first one's name."""
    out: dict[tuple[str, int], Interval] = {}
    for line in lines:
        key = (line.job, line.attempt)
        seen = out.get(key)
        if seen is None:
            out[key] = Interval(line.job, line.attempt, line.executor, line.ns, line.ns, 1)
        else:
            out[key] = Interval(
                seen.job, seen.attempt, seen.executor, min(seen.first, line.ns), max(seen.last, line.ns), seen.lines + 1
            )
    return out

"""A Jepsen-style history (SPEC §8) paired into operations.

Each client process is sequential: an `invoke` is followed by its completion (`ok`, `fail` or
`info`). An invoke with no completion before the history ends counts as `info` (outcome unknown).
Nemesis events come in pairs too: an `invoke` at the start of a fault and an `info` at its end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NEMESIS = "nemesis"
Event = dict[str, Any]


@dataclass(frozen=True)
class Op:
    """One client operation: its invocation and its completion."""

    process: int | str
    f: str
    type: str  # "ok" | "fail" | "info"
    invoke_index: int
    invoke_time: int
    invoke_value: Any
    complete_index: int | None  # None when the history ended before a completion
    complete_time: int | None
    value: Any  # the completion's value (the invoke's value when there is none)

    @property
    def ok(self) -> bool:
        return self.type == "ok"

    @property
    def end(self) -> float:
        """When the op certainly had taken effect: its completion if ok, else never (+inf)."""
        return float(self.complete_time) if self.ok and self.complete_time is not None else math.inf

    def field(self, name: str, default: Any = None) -> Any:
        """A field of the completion value, falling back to the invoke value."""
        for value in (self.value, self.invoke_value):
            if isinstance(value, dict) and name in value:
                return value[name]
        return default

    def brief(self) -> dict[str, Any]:
        """A small description for evidence."""
        out: dict[str, Any] = {"index": self.invoke_index, "process": self.process, "f": self.f, "type": self.type}
        if self.complete_index is not None:
            out["complete_index"] = self.complete_index
        if isinstance(self.value, dict):
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class NemesisWindow:
    """One fault: from its start (invoke) to its end (info), or to the end of the history."""

    f: str
    start: int
    end: int
    targets: tuple[str, ...]
    index: int
    ended: bool
    leader: str | None = None  # the leader at the start, when the nemesis says (value "leader")


def pair_ops(events: Iterable[Event]) -> list[Op]:
    """Client operations, in invoke order."""
    pending: dict[Any, Event] = {}
    ops: list[Op] = []
    for ev in events:
        process = ev.get("process")
        if process == NEMESIS:
            continue
        if ev.get("type") == "invoke":
            if process in pending:  # a broken process: the earlier op's outcome is unknown
                ops.append(_make_op(pending.pop(process), None))
            pending[process] = ev
        elif process in pending:
            ops.append(_make_op(pending.pop(process), ev))
    ops.extend(_make_op(inv, None) for inv in pending.values())
    ops.sort(key=lambda op: op.invoke_index)
    return ops


def _make_op(inv: Event, done: Event | None) -> Op:
    return Op(
        process=inv["process"],
        f=str(inv.get("f")),
        type=str(done.get("type")) if done is not None else "info",
        invoke_index=int(inv["index"]),
        invoke_time=int(inv["time"]),
        invoke_value=inv.get("value"),
        complete_index=int(done["index"]) if done is not None else None,
        complete_time=int(done["time"]) if done is not None else None,
        value=done.get("value") if done is not None else inv.get("value"),
    )


def pair_nemesis(events: Iterable[Event]) -> list[NemesisWindow]:
    """Fault windows, in start order; a fault never ended lasts to the history's last event."""
    events = list(events)
    last_time = max((int(ev["time"]) for ev in events), default=0)
    open_: dict[str, list[Event]] = {}
    windows: list[NemesisWindow] = []
    for ev in events:
        if ev.get("process") != NEMESIS:
            continue
        f = str(ev.get("f"))
        if ev.get("type") == "invoke":
            open_.setdefault(f, []).append(ev)
        elif open_.get(f):
            windows.append(_window(_take_start(open_[f], ev), ev, last_time))
    windows.extend(_window(start, None, last_time) for starts in open_.values() for start in starts)
    windows.sort(key=lambda w: (w.start, w.index))
    return windows


def _take_start(starts: list[Event], end: Event) -> Event:
    """The open start this end closes: the oldest with the same targets, else the oldest."""
    targets = _targets(end)
    for i, start in enumerate(starts):
        if _targets(start) == targets:
            return starts.pop(i)
    return starts.pop(0)


def _window(start: Event, end: Event | None, last_time: int) -> NemesisWindow:
    targets = list(_targets(start))
    targets += [t for t in _targets(end) if t not in targets]
    return NemesisWindow(
        f=str(start.get("f")),
        start=int(start["time"]),
        end=int(end["time"]) if end is not None else last_time,
        targets=tuple(targets),
        index=int(start["index"]),
        ended=end is not None,
        leader=_leader(start),
    )


def _leader(ev: Event) -> str | None:
    value = ev.get("value")
    leader = value.get("leader") if isinstance(value, dict) else None
    return None if leader is None else str(leader)


def _targets(ev: Event | None) -> list[str]:
    value = ev.get("value") if ev is not None else None
    if not isinstance(value, dict):
        return []
    return _flatten(value.get("targets") or [])


def _flatten(targets: Any) -> list[str]:
    """Targets as a flat list of names (a partition may list its sides as nested lists)."""
    if isinstance(targets, list | tuple):
        return [name for item in targets for name in _flatten(item)]
    return [str(targets)]

"""A Wing & Gong linearizability search with Lowe's memoisation ("Testing for linearizability", 2017).

The history is a doubly linked list of call and return entries in time order (a call before a
return at equal times, since only a return strictly before a call orders two operations). The
search linearizes, one by one, calls that precede the first remaining return; an operation
whose effect is uncertain (`optional`, an `info` op) may be linearized at any point after its call
or never, and its return lies at +inf. A configuration (set of linearized ops, model state) seen
once is never explored again. The model is any object with `step(state, op) -> state | None`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

CHECK_CLOCK_EVERY = 512


class Model(Protocol):
    def step(self, state: Any, op: Any) -> Any | None: ...


class SearchTimeout(Exception):
    """The search hit its deadline before it could decide."""


@dataclass(frozen=True)
class SearchOp:
    call: float
    ret: float  # math.inf for an optional op
    optional: bool
    payload: Hashable  # what the model steps on


@dataclass(frozen=True)
class SearchResult:
    linearizable: bool
    configurations: int
    # When not linearizable: the longest partial linearization found (op positions, in order)
    # and the op whose return could not be passed after it.
    longest_prefix: tuple[int, ...] = ()
    stuck_on: int | None = None


class _Entry:
    __slots__ = ("call", "match", "next", "op", "prev", "time")

    def __init__(self, op: int, time_: float, call: bool) -> None:
        self.op, self.time, self.call = op, time_, call
        self.prev: _Entry | None = None
        self.next: _Entry | None = None
        self.match: _Entry | None = None


def _build(ops: Sequence[SearchOp]) -> _Entry:
    entries: list[_Entry] = []
    for i, op in enumerate(ops):
        call, ret = _Entry(i, op.call, True), _Entry(i, math.inf if op.optional else op.ret, False)
        call.match = ret
        entries += [call, ret]
    entries.sort(key=lambda e: (e.time, not e.call, e.op))
    head = _Entry(-1, -math.inf, False)
    prev = head
    for e in entries:
        prev.next, e.prev = e, prev
        prev = e
    return head


def _lift(call: _Entry) -> None:
    for e in (call, call.match):
        assert e is not None and e.prev is not None
        e.prev.next = e.next
        if e.next is not None:
            e.next.prev = e.prev


def _unlift(call: _Entry) -> None:
    for e in (call.match, call):
        assert e is not None and e.prev is not None
        e.prev.next = e
        if e.next is not None:
            e.next.prev = e


def search(ops: Sequence[SearchOp], model: Model, initial: Hashable, deadline: float = math.inf) -> SearchResult:
    """Decide whether `ops` linearize against `model`; raise SearchTimeout past `deadline` (monotonic)."""
    head = _build(ops)
    required = sum(not op.optional for op in ops)
    state: Any = initial
    linearized = 0
    stack: list[tuple[_Entry, Any]] = []
    seen: set[tuple[int, Any]] = set()
    best: tuple[tuple[int, ...], int | None] = ((), None)
    entry = head.next
    steps = 0
    while required > 0:
        steps += 1
        if steps % CHECK_CLOCK_EVERY == 0 and time.monotonic() > deadline:
            raise SearchTimeout(f"gave up after {len(seen)} configurations")
        assert entry is not None, "a call's return always follows it"
        if entry.call:
            new = model.step(state, ops[entry.op].payload)
            key = (linearized | (1 << entry.op), new)
            if new is not None and key not in seen:
                seen.add(key)
                stack.append((entry, state))
                state, linearized = new, key[0]
                required -= not ops[entry.op].optional
                _lift(entry)
                entry = head.next
                continue
            entry = entry.next
            continue
        if best[1] is None or len(stack) > len(best[0]):
            best = (tuple(e.op for e, _ in stack), entry.op)
        if not stack:
            return SearchResult(False, len(seen), best[0], best[1])
        top, state = stack.pop()
        linearized &= ~(1 << top.op)
        required += not ops[top.op].optional
        _unlift(top)
        entry = top.next
    return SearchResult(True, len(seen))

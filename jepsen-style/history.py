"""The run's history: one JSON object per line (SPEC §8), written as the operations happen.

Every client and the nemesis append through one History, so `index` is a total order and `time`
is one monotonic clock (ns since the run started) for all of them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

FLUSH_EVERY = 64  # lines between flushes; close() flushes the rest


class History:
    def __init__(self, path: Path, start_ns: int | None = None) -> None:
        self.path = path
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns
        self._file: IO[str] | None = path.open("w")
        self._index = 0
        self._unflushed = 0
        self.counts: dict[tuple[str, str, str], int] = {}  # (client|nemesis, f, type) -> ops

    def now(self) -> int:
        return time.monotonic_ns() - self.start_ns

    def append(self, process: int | str, type_: str, f: str, value: Any) -> dict[str, Any]:
        op = {"index": self._index, "time": self.now(), "process": process, "type": type_, "f": f,
              "value": value}
        self._index += 1
        key = ("nemesis" if process == "nemesis" else "client", f, type_)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self._file is not None:
            self._file.write(json.dumps(op, separators=(",", ":")) + "\n")
            self._unflushed += 1
            if self._unflushed >= FLUSH_EVERY:
                self._file.flush()
                self._unflushed = 0
        return op

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def count(self, who: str, type_: str | None = None, f: str | None = None) -> int:
        return sum(n for (w, f2, t), n in self.counts.items()
                   if w == who and (type_ is None or t == type_) and (f is None or f2 == f))

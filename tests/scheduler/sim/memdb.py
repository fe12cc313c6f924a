"""An in-memory store with the interface the state machine uses of `raftsched.storage.db.NodeDB`
(`StateDB`: column family views, write batches), so a simulated node applies with the real
`SchedulerState` without RocksDB. Views iterate in key order, like RocksDB's."""

from __future__ import annotations

import bisect
from typing import Any

from raftsched.state.machine import COLUMN_FAMILIES


class _Iter:
    """The part of a rocksdict iterator `machine._walk` uses."""

    def __init__(self, keys: list[bytes], data: dict[bytes, bytes]) -> None:
        self._keys, self._data, self._i = keys, data, -1

    def seek(self, key: bytes) -> None:
        self._i = bisect.bisect_left(self._keys, key)

    def seek_to_first(self) -> None:
        self._i = 0

    def seek_for_prev(self, key: bytes) -> None:
        self._i = bisect.bisect_right(self._keys, key) - 1

    def valid(self) -> bool:
        return 0 <= self._i < len(self._keys)

    def key(self) -> bytes:
        return self._keys[self._i]

    def value(self) -> bytes:
        return self._data[self._keys[self._i]]

    def next(self) -> None:
        self._i += 1

    def prev(self) -> None:
        self._i -= 1


class View:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self._data = data

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def items(self) -> list[tuple[bytes, bytes]]:
        return sorted(self._data.items())

    def keys(self) -> list[bytes]:
        return sorted(self._data)

    def iter(self) -> _Iter:
        return _Iter(sorted(self._data), self._data)

    def snapshot(self) -> View:
        return View(dict(self._data))


class MemoryDB:
    def __init__(self) -> None:
        self.families: dict[str, dict[bytes, bytes]] = {name: {} for name in COLUMN_FAMILIES}

    def cf(self, name: str) -> View:
        return View(self.families.setdefault(name, {}))

    def handle(self, name: str) -> str:
        return name

    def batch(self) -> list[tuple[str, bytes, bytes | None]]:
        return _Batch()

    def write(self, batch: Any, *, sync: bool) -> None:
        for family, key, value in batch:
            data = self.families.setdefault(family, {})
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value


class _Batch(list):  # type: ignore[type-arg]
    def put(self, key: bytes, value: bytes, handle: str) -> None:
        self.append((handle, bytes(key), bytes(value)))

    def delete(self, key: bytes, handle: str) -> None:
        self.append((handle, bytes(key), None))

"""Small ordered containers for the state machine's secondary indexes.

The dispatcher asks for "the next queued jobs" and "the attempts past their deadline" every
scheduling round; scanning every job each time would cost O(jobs) per round. These keep the keys
sorted as they change (bisect on a list: an insert or delete is a memmove, cheap up to millions of
small tuples) so a round costs O(log n + items read).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K", int, tuple[int, ...])


class SortedKeys(Generic[K]):
    """A sorted set of keys (ints, or tuples of ints). Invariant: `_keys` is strictly increasing."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: list[K] = []

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[K]:
        return iter(self._keys)

    def __contains__(self, key: K) -> bool:
        i = bisect.bisect_left(self._keys, key)
        return i < len(self._keys) and self._keys[i] == key

    def add(self, key: K) -> None:
        i = bisect.bisect_left(self._keys, key)
        if i == len(self._keys) or self._keys[i] != key:
            self._keys.insert(i, key)

    def discard(self, key: K) -> None:
        i = bisect.bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            del self._keys[i]

    def from_key(self, start: K) -> Iterator[K]:
        """Keys >= start, in order. The caller must not change the set while iterating."""
        i = bisect.bisect_left(self._keys, start)
        for j in range(i, len(self._keys)):
            yield self._keys[j]

    def clear(self) -> None:
        self._keys.clear()

"""merge_appends: which consecutive appends become one, and what the one says."""

from __future__ import annotations

from raftsched.raft.appends import merge_appends
from raftsched.raft.messages import AppendRequest, Entry, EntryType


def entries(first: int, count: int, term: int = 2, size: int = 10) -> tuple[Entry, ...]:
    return tuple(Entry(index=i, term=term, type=EntryType.NORMAL, data=b"x" * size)
                 for i in range(first, first + count))


def append(prev: int, prev_term: int, ents: tuple[Entry, ...], commit: int = 0, term: int = 2,
           to: str = "n2") -> AppendRequest:
    return AppendRequest("n1", to, term, prev, prev_term, ents, commit)


def test_an_append_that_continues_the_one_before_is_merged_into_it() -> None:
    first = append(4, 1, entries(5, 2), commit=4)
    second = append(6, 2, entries(7, 3), commit=6)
    merged = merge_appends(first, second, 1 << 20)
    assert merged == append(4, 1, entries(5, 5), commit=6)


def test_appends_that_do_not_continue_each_other_stay_apart() -> None:
    first = append(4, 1, entries(5, 2))
    assert merge_appends(first, append(7, 2, entries(8, 1)), 1 << 20) is None  # a gap
    assert merge_appends(first, append(6, 1, entries(7, 1)), 1 << 20) is None  # prev term differs
    assert merge_appends(first, append(5, 2, entries(6, 1)), 1 << 20) is None  # overlaps (a resend)
    assert merge_appends(first, append(6, 2, entries(7, 1), to="n3"), 1 << 20) is None
    assert merge_appends(first, append(6, 2, entries(7, 1, term=3), term=3), 1 << 20) is None


def test_an_empty_append_is_not_merged() -> None:
    """A probe or commit update adds nothing, and an empty first one is what a heartbeat or
    probe looks like: merging a later append into it is fine, an empty second one is kept."""
    first = append(4, 1, entries(5, 2))
    assert merge_appends(first, append(6, 2, (), commit=6), 1 << 20) is None
    probe = append(4, 1, ())
    assert merge_appends(probe, append(4, 1, entries(5, 1)), 1 << 20) == append(4, 1, entries(5, 1))


def test_the_byte_limit_of_the_core_holds_for_the_merged_append() -> None:
    first = append(4, 1, entries(5, 2, size=100))  # 2 x (100 + 24) bytes
    second = append(6, 2, entries(7, 1, size=100))
    assert merge_appends(first, second, 3 * 124) is not None
    assert merge_appends(first, second, 3 * 124 - 1) is None
    assert merge_appends(first, second, 1) is None  # --max-append-bytes 1: one entry per message

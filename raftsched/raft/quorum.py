"""Majority arithmetic: the commit index and vote tallies of a set of voters."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from enum import Enum


def majority(voters: int) -> int:
    return voters // 2 + 1


def committed_index(voters: Collection[str], match_of: Callable[[str], int]) -> int:
    """The highest index that a majority of `voters` have: the majority-th largest match."""
    if not voters:
        return 0
    matches = sorted((match_of(v) for v in voters), reverse=True)
    return matches[majority(len(matches)) - 1]


class VoteResult(Enum):
    PENDING = 0
    WON = 1
    LOST = 2


def tally(voters: Collection[str], votes: Mapping[str, bool]) -> VoteResult:
    """WON once a majority granted; LOST once a majority can no longer be reached."""
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if rejected > len(voters) - need:
        return VoteResult.LOST
    return VoteResult.PENDING

"""The corruption check's verdict (pure): the digest more than half of the members share is right;
a member with another digest is corrupt; without a majority nothing is decided."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftsched.raft.errors import ProposalDroppedError
from raftsched.scheduler.corruption import CorruptionChecker, judge
from raftsched.v1 import commands_pb2

A, B = b"a" * 16, b"b" * 16


def test_the_odd_one_out_differs() -> None:
    v = judge(frozenset({"n1", "n2", "n3"}), {"n1": A, "n2": A, "n3": B}, 7)
    assert (v.majority, v.agree, v.differ, v.silent) == (A, {"n1", "n2"}, {"n3"}, frozenset())


def test_a_silent_member_is_neither_right_nor_wrong() -> None:
    v = judge(frozenset({"n1", "n2", "n3"}), {"n1": A, "n2": A}, 7)
    assert v.majority == A and v.differ == frozenset() and v.silent == {"n3"}


def test_without_a_majority_of_the_members_nothing_is_decided() -> None:
    # Two of five agree: not a majority of the members, whatever the others would say.
    v = judge(frozenset({"n1", "n2", "n3", "n4", "n5"}), {"n1": A, "n2": A, "n3": B}, 7)
    assert v.majority is None and not v.agree and not v.differ
    assert judge(frozenset({"n1", "n2"}), {"n1": A, "n2": B}, 1).majority is None


@given(st.dictionaries(st.sampled_from(["n1", "n2", "n3", "n4", "n5"]), st.sampled_from([A, B])))
def test_a_verdict_never_calls_a_majority_corrupt(digests: dict[str, bytes]) -> None:
    members = frozenset({"n1", "n2", "n3", "n4", "n5"})
    v = judge(members, digests, 1)
    assert len(v.differ) < 3 and v.agree.isdisjoint(v.differ)
    assert v.agree | v.differ | v.silent == members or v.majority is None


async def test_a_check_cut_off_by_a_leadership_transfer_is_skipped_without_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """Found by tests/fuzz: a TransferLeader while the leader proposed its check logged an ERROR
    with a traceback, as if the check had failed."""

    async def propose(cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
        raise ProposalDroppedError("leadership is being transferred to n2")

    async def never(peer: str, check_id: int) -> None:
        raise AssertionError("no digest is asked for a check that was never proposed")

    checker = CorruptionChecker("n1", 0.01, propose, lambda _: None, never, lambda: frozenset({"n1", "n2", "n3"}),
                                lambda: [])
    caplog.set_level(logging.INFO, logger="raftsched.corruption")
    task = asyncio.create_task(checker.run())
    try:
        await asyncio.wait_for(_until(lambda: checker.checks["incomplete"] >= 2), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert checker.checks["failed"] == 0
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text
    assert "leadership is changing" in caplog.text


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)

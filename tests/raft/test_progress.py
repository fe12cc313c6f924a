"""The leader's per-follower progress: how rejections move it."""

from __future__ import annotations

from raftsched.raft.progress import Progress, ProgressState


def _probing(match: int) -> Progress:
    pr = Progress(match + 1, max_inflight=4)
    pr.maybe_update(match)
    assert pr.state is ProgressState.PROBE and (pr.match, pr.next) == (match, match + 1)
    return pr


def test_a_stale_rejection_changes_nothing() -> None:
    pr = _probing(10)
    assert not pr.maybe_decrease(7, 3)  # an answer to an older probe (ours is after 10)
    assert (pr.match, pr.next) == (10, 11)


def test_a_rejection_below_the_match_index_while_replicating_is_stale() -> None:
    pr = _probing(10)
    pr.become_replicate()
    assert not pr.maybe_decrease(9, 5)
    assert (pr.match, pr.next) == (10, 11)


def test_a_follower_that_lost_acknowledged_entries_is_probed_from_what_it_holds() -> None:
    """Our probe after index 10, which it acknowledged, is rejected with its log ending at 6: it
    lost its tail. Before, next stayed at match + 1 and the probe was repeated forever."""
    pr = _probing(10)
    pr.sent(10, 1)
    assert pr.maybe_decrease(10, 6)
    assert pr.match == 0 and pr.next == 7 and not pr.probe_sent
    assert pr.maybe_update(9)  # it acknowledges again: counted again
    assert pr.match == 9

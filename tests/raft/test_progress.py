"""The leader's per-follower progress: how rejections move it."""

from __future__ import annotations

from raftsched.raft.progress import Progress, ProgressState


def _probing(match: int) -> Progress:
    pr = Progress(match + 1, max_inflight=4)
    pr.maybe_update(match)
    assert pr.state is ProgressState.PROBE and (pr.match, pr.next) == (match, match + 1)
    return pr


def test_a_rejection_of_an_acknowledged_index_while_replicating_is_checked_by_a_probe() -> None:
    """Regression (make test, on CI): a follower restarted with its WAL cut while its leader stayed
    in REPLICATE. Each rejection looked stale and its heartbeats were refused: it never caught up."""
    pr = _probing(10)
    pr.become_replicate()
    assert pr.maybe_decrease(10, 6)
    assert pr.state is ProgressState.PROBE and (pr.match, pr.next) == (10, 11)
    assert pr.maybe_decrease(10, 6)  # the probe is rejected too: the second doubt
    assert (pr.match, pr.next) == (0, 7)


def test_a_rejection_below_the_match_index_while_replicating_is_stale() -> None:
    """Every append sent since it acknowledged 10 follows 10: a rejection before it is old news."""
    pr = _probing(10)
    pr.become_replicate()
    assert not pr.maybe_decrease(9, 6)
    assert pr.state is ProgressState.REPLICATE and (pr.match, pr.next) == (10, 11)


def test_a_late_rejection_at_the_match_index_costs_one_probe() -> None:
    pr = _probing(10)
    pr.become_replicate()
    assert pr.maybe_decrease(10, 6)
    pr.maybe_update(10)  # the probe is acknowledged: it held 10 all along
    assert pr.doubted == 0
    assert pr.maybe_decrease(10, 6)  # a later rejection there is a first doubt again, not a second
    assert (pr.match, pr.next) == (10, 11)


def test_one_rejection_of_an_acknowledged_index_may_be_a_late_answer() -> None:
    pr = _probing(10)
    assert pr.maybe_decrease(10, 6)  # probe again, at the same place
    assert (pr.match, pr.next) == (10, 11)
    assert pr.maybe_update(12)  # it did hold 10: the doubt is gone
    pr.become_probe()
    assert pr.maybe_decrease(12, 6) and pr.match == 12  # a new doubt, not a second one


def test_two_rejections_of_an_acknowledged_index_mean_the_follower_lost_entries() -> None:
    """Its log was cut to 6 after it acknowledged 10: before, the leader probed after 10 forever
    (every rejection looked like a late one); now, on the second, it probes where the log ends."""
    pr = _probing(10)
    assert pr.maybe_decrease(10, 6)
    assert pr.maybe_decrease(10, 6)
    assert (pr.match, pr.next) == (0, 7)
    assert pr.maybe_update(9) and pr.match == 9  # counted again once it acknowledges


def test_a_follower_silent_for_three_heartbeat_rounds_is_probed_again() -> None:
    """Regression (make test; the membership simulation): a follower back with a log cut short
    (or a wiped disk) refuses every heartbeat, as their commit is beyond its log; a probe sent
    while it was down was lost, or, replicating, we had nothing new to send. Nothing answered,
    and its progress never moved again."""
    pr = _probing(10)
    pr.sent(10, 0)
    assert pr.is_paused()
    assert not pr.heartbeat_round() and not pr.heartbeat_round()  # its answer may still come
    assert pr.heartbeat_round() and not pr.is_paused()
    pr.become_replicate()
    assert not pr.heartbeat_round() and not pr.heartbeat_round()
    assert pr.heartbeat_round()
    assert pr.state is ProgressState.PROBE and (pr.match, pr.next) == (10, 11)


def test_a_follower_that_answers_is_never_probed_again() -> None:
    pr = _probing(10)
    pr.become_replicate()
    for _ in range(10):
        assert not pr.heartbeat_round()
        pr.unanswered = 0  # what the core does on any message from it

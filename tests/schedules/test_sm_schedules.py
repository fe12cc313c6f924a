"""Schedules in the state machine: exactly-once firing, catch-up, overlap, pause, persistence."""

from __future__ import annotations

from state.sm_harness import Node

from raftsched.state.firetimes import MISSED, OUTSIDE_WINDOW, OVERLAP, PAUSED
from raftsched.state.machine import SchedulerState
from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2

from .helpers import T0, create, fire, jobs_of, leader_round, pause, scheduled_times, skipped, spec
from .helpers import finish as finish_job

S = scheduler_pb2
J = jobs_pb2


def _dump(node: Node) -> bytes:
    return node.state.snapshot()


def test_create_then_a_second_create_is_refused(node: Node) -> None:
    created = create(node, spec("a"))
    assert created.id == "a" and created.created_ms == T0
    again = node.run(commands_pb2.Command(create_schedule=commands_pb2.CreateScheduleCmd(spec=spec("a"))))
    assert again.code == 6 and "exists" in again.error


def test_a_bad_spec_in_a_committed_entry_is_refused(node: Node) -> None:
    bad = spec("a", every_ms=10)
    result = node.run(commands_pb2.Command(create_schedule=commands_pb2.CreateScheduleCmd(spec=bad)))
    assert result.code == 3 and result.error.startswith("every_ms")
    assert node.state.schedules() == []


def test_a_firing_creates_one_job_with_schedule_fields(node: Node) -> None:
    create(node, spec("a"))
    result = fire(node, "a", T0 + 1000)
    job = result.job
    assert job.schedule_id == "a" and job.scheduled_time == T0 + 1000
    assert job.spec.idempotency_key == f"schedule/a@{T0}/{T0 + 1000}"
    assert node.state.schedule("a").last_fired_time == T0 + 1000  # type: ignore[union-attr]
    assert node.state.schedule("a").fired_count == 1  # type: ignore[union-attr]


def test_a_firing_for_an_already_fired_time_changes_nothing(node: Node) -> None:
    create(node, spec("a"))
    fire(node, "a", T0 + 2000)
    before = _dump(node)
    for t in (T0 + 2000, T0 + 1000, T0):
        result = fire(node, "a", t)
        assert result.code == 9 and not result.job.id
        # Only the applied index moves; schedules, jobs, keys and counters are as they were.
        assert _without_meta(_dump(node)) == _without_meta(before)
    assert node.state.counters()["refused_commands"] == 0
    assert len(jobs_of(node, "a")) == 1


def _without_meta(snapshot: bytes) -> bytes:
    from raftsched.state import snapshot as snap
    from raftsched.state.machine import COLUMN_FAMILIES

    records = snap.decode(snapshot, COLUMN_FAMILIES)
    return repr([r for r in records if r[0] != "sm_meta" or r[1] != b"applied_index"]).encode()


def test_skips_advance_the_watermark_and_refuse_later_firings(node: Node) -> None:
    create(node, spec("a"))
    cmd = commands_pb2.SkipFiresCmd(name="a", fires=[S.SkippedFire(scheduled_time=T0 + 1000, reason=MISSED)])
    node.run(commands_pb2.Command(skip_fires=cmd))
    assert fire(node, "a", T0 + 1000).code == 9
    node.run(commands_pb2.Command(skip_fires=cmd))  # a repeat is ignored
    assert node.state.schedule("a").skipped_count == 1  # type: ignore[union-attr]


def test_skipped_records_are_bounded_but_counted(node: Node) -> None:
    create(node, spec("a"))
    fires = [S.SkippedFire(scheduled_time=T0 + i * 1000, reason=MISSED) for i in range(1, 251)]
    node.run(commands_pb2.Command(skip_fires=commands_pb2.SkipFiresCmd(name="a", fires=fires)))
    schedule = node.state.schedule("a")
    assert schedule is not None and schedule.skipped_count == 250 and len(schedule.skipped) == 100
    assert schedule.skipped[-1].scheduled_time == T0 + 250_000


def test_manual_trigger_fires_now_and_leaves_the_watermark(node: Node) -> None:
    create(node, spec("a", every_ms=10_000))
    node.tick(1500)
    result = fire(node, "a", node.now, manual=True)
    assert result.job.scheduled_time == T0 + 1500 and "/manual/" in result.job.spec.idempotency_key
    assert node.state.schedule("a").last_fired_time == 0  # type: ignore[union-attr]
    node.tick(8600)
    leader_round(node)
    assert scheduled_times(node, "a") == [T0 + 10_000]


# --- catch-up through the leader's plan, from a given last fired time and now ------------------


def _outage(node: Node, catchup: int, **fields: int) -> None:
    create(node, spec("a", every_ms=1000, catchup=catchup, **fields))  # type: ignore[arg-type]
    node.tick(1000)
    leader_round(node)  # fires T0 + 1 s: the last fired time
    node.tick(10_200)  # then no leader for 10 s
    leader_round(node)


def test_catchup_skip_after_an_outage(node: Node) -> None:
    _outage(node, S.CATCHUP_POLICY_SKIP)
    assert scheduled_times(node, "a") == [T0 + 1000, T0 + 11_000]
    assert skipped(node, "a") == [(T0 + i * 1000, MISSED) for i in range(2, 11)]


def test_catchup_once_after_an_outage(node: Node) -> None:
    _outage(node, S.CATCHUP_POLICY_ONCE)
    assert scheduled_times(node, "a") == [T0 + 1000, T0 + 10_000, T0 + 11_000]
    assert skipped(node, "a") == [(T0 + i * 1000, MISSED) for i in range(2, 10)]


def test_catchup_all_after_an_outage(node: Node) -> None:
    _outage(node, S.CATCHUP_POLICY_ALL)
    assert scheduled_times(node, "a") == [T0 + i * 1000 for i in range(1, 12)]
    assert skipped(node, "a") == []


def test_catchup_all_bounded_by_its_window(node: Node) -> None:
    _outage(node, S.CATCHUP_POLICY_ALL, catchup_window_ms=4000)
    assert scheduled_times(node, "a") == [T0 + 1000, *(T0 + i * 1000 for i in range(8, 12))]
    assert skipped(node, "a") == [(T0 + i * 1000, OUTSIDE_WINDOW) for i in range(2, 8)]


def test_a_second_round_changes_nothing(node: Node) -> None:
    _outage(node, S.CATCHUP_POLICY_ALL)
    assert leader_round(node) == []


# --- pause ------------------------------------------------------------------------------------


def test_paused_times_are_recorded_and_resume_fires_again(node: Node) -> None:
    create(node, spec("a", catchup=S.CATCHUP_POLICY_ALL))
    pause(node, "a", note="maintenance")
    assert node.state.schedule("a").note == "maintenance"  # type: ignore[union-attr]
    node.tick(3000)
    leader_round(node)
    assert skipped(node, "a") == [(T0 + i * 1000, PAUSED) for i in (1, 2, 3)]
    pause(node, "a", paused=False)
    node.tick(1000)
    leader_round(node)
    assert scheduled_times(node, "a") == [T0 + 4000]


def test_a_firing_planned_before_a_pause_commits_as_paused(node: Node) -> None:
    create(node, spec("a"))
    pause(node, "a")
    result = fire(node, "a", T0 + 1000)  # the leader's view was older than the pause
    assert not result.job.id and skipped(node, "a") == [(T0 + 1000, PAUSED)]


# --- overlap ----------------------------------------------------------------------------------


def _overlapping(node: Node, overlap: int) -> list[jobs_pb2.Job]:
    node.up("e1", slots=4)
    create(node, spec("a", overlap=overlap))
    first = fire(node, "a", T0 + 1000).job
    fire(node, "a", T0 + 2000)
    return [first, *jobs_of(node, "a")[1:]]


def test_overlap_allow_fires_beside_the_running_job(node: Node) -> None:
    jobs = _overlapping(node, S.OVERLAP_POLICY_ALLOW)
    assert [j.scheduled_time for j in jobs] == [T0 + 1000, T0 + 2000]


def test_overlap_skip_records_the_time(node: Node) -> None:
    jobs = _overlapping(node, S.OVERLAP_POLICY_SKIP)
    assert len(jobs) == 1 and skipped(node, "a") == [(T0 + 2000, OVERLAP)]
    finish_job(node, jobs[0].id)
    fire(node, "a", T0 + 3000)
    assert scheduled_times(node, "a") == [T0 + 1000, T0 + 3000]


def test_overlap_buffer_one_fires_when_the_job_ends_and_keeps_only_the_newest(node: Node) -> None:
    jobs = _overlapping(node, S.OVERLAP_POLICY_BUFFER_ONE)
    assert len(jobs) == 1 and node.state.schedule("a").buffered  # type: ignore[union-attr]
    fire(node, "a", T0 + 3000)  # replaces the waiting T0 + 2 s
    assert skipped(node, "a") == [(T0 + 2000, OVERLAP)]
    finish_job(node, jobs[0].id)
    assert scheduled_times(node, "a") == [T0 + 1000, T0 + 3000]
    assert not node.state.schedule("a").buffered  # type: ignore[union-attr]
    assert fire(node, "a", T0 + 3000).code == 9


def _buffered_behind(node: Node, *, release_when_due: bool) -> jobs_pb2.Job:
    """T0 + 1 s fired and running; T0 + 2 s fired by a leader whose clock reads T0 + 2 s and
    buffered behind it. Returns the running job."""
    node.up("e1", slots=4)
    create(node, spec("a", overlap=S.OVERLAP_POLICY_BUFFER_ONE))
    first = fire(node, "a", T0 + 1000).job
    cmd = commands_pb2.FireScheduleCmd(name="a", scheduled_time=T0 + 2000, release_when_due=release_when_due)
    node.run(commands_pb2.Command(fire_schedule=cmd), at=T0 + 2000)
    assert node.state.schedule("a").buffered  # type: ignore[union-attr]
    return first


def test_buffer_one_waits_for_its_time_when_the_job_ends_on_a_slower_clock(node: Node) -> None:
    """The chaos run's finding: the job ahead ended in an entry stamped before the buffered time
    was due (its leader's clock ran behind the one that fired the time). The time fires only
    once the leader's clock reaches it, in a ReleaseBufferedCmd."""
    first = _buffered_behind(node, release_when_due=True)
    node.now = T0 + 1500  # the next leader's clock, behind
    finish_job(node, first.id)
    assert scheduled_times(node, "a") == [T0 + 1000]
    assert node.state.schedule("a").buffered  # type: ignore[union-attr]
    assert leader_round(node, T0 + 1900) == []  # not due by this leader's clock yet
    done = leader_round(node, T0 + 2000)
    assert [cmd.WhichOneof("body") for cmd in done] == ["release_buffered"]
    released = jobs_of(node, "a")[-1]
    assert released.scheduled_time == T0 + 2000 and released.submitted_ms == T0 + 2000
    assert not node.state.schedule("a").buffered  # type: ignore[union-attr]
    before = _dump(node)
    again = node.run(done[0], at=T0 + 2100)  # a new leader repeats it: nothing changes
    assert again.code == 9 and not again.job.id
    assert _without_meta(_dump(node)) == _without_meta(before)
    assert node.state.counters()["refused_commands"] == 0


def test_buffer_one_in_the_earlier_form_fires_when_the_job_ends_whatever_its_stamp(node: Node) -> None:
    """Entries written while a member reads only the earlier form (raftsched.features) apply as
    that member applies them."""
    first = _buffered_behind(node, release_when_due=False)
    node.now = T0 + 1500
    finish_job(node, first.id)
    assert scheduled_times(node, "a") == [T0 + 1000, T0 + 2000]
    assert jobs_of(node, "a")[-1].submitted_ms == T0 + 1500


def test_a_newer_time_fires_the_one_waiting_for_its_release_first(node: Node) -> None:
    first = _buffered_behind(node, release_when_due=True)
    node.now = T0 + 1500
    finish_job(node, first.id)
    fire(node, "a", T0 + 3000)  # a leader at T0 + 3 s fires the next time before the release
    times = scheduled_times(node, "a")
    assert times == [T0 + 1000, T0 + 2000], times  # T0 + 2 s runs; T0 + 3 s waits behind it
    assert node.state.schedule("a").buffered and node.state.schedule("a").last_fired_time == T0 + 3000  # type: ignore[union-attr]
    assert skipped(node, "a") == []


def test_a_release_of_a_time_not_buffered_or_before_its_job_ends_changes_nothing(node: Node) -> None:
    _buffered_behind(node, release_when_due=True)
    before = _dump(node)
    for t in (T0 + 2000, T0 + 1000):  # the job ahead still runs; a time not the buffered one
        cmd = commands_pb2.Command(release_buffered=commands_pb2.ReleaseBufferedCmd(name="a", scheduled_time=t))
        result = node.run(cmd, at=T0 + 2500)
        assert result.code == 9 and not result.job.id, result
        assert _without_meta(_dump(node)) == _without_meta(before)
    missing = node.run(commands_pb2.Command(release_buffered=commands_pb2.ReleaseBufferedCmd(name="zz")))
    assert missing.code == 5


def test_overlap_cancel_other_cancels_then_fires(node: Node) -> None:
    jobs = _overlapping(node, S.OVERLAP_POLICY_CANCEL_OTHER)
    assert [j.scheduled_time for j in jobs] == [T0 + 1000, T0 + 2000]
    first = node.job(jobs[0].id)
    assert first.state == J.JOB_STATE_CANCELLED and "cancel-other" in first.state_reason


# --- delete, listing, persistence ------------------------------------------------------------


def test_delete_keeps_the_jobs(node: Node) -> None:
    create(node, spec("a"))
    fire(node, "a", T0 + 1000)
    node.run(commands_pb2.Command(delete_schedule=commands_pb2.DeleteScheduleCmd(name="a")))
    assert node.state.schedule("a") is None and len(jobs_of(node, "a")) == 1
    assert fire(node, "a", T0 + 2000).code == 5


def test_list_jobs_by_schedule_pages_and_filters_state(node: Node) -> None:
    create(node, spec("a"))
    create(node, spec("b"))
    for i in range(1, 6):
        fire(node, "a", T0 + i * 1000)
        fire(node, "b", T0 + i * 1000)
    node.submit()
    page, token = node.list_jobs(schedule="a", page_size=3)
    rest, end = node.list_jobs(schedule="a", page_size=3, page_token=token)
    assert [j.scheduled_time for j in page + rest] == [T0 + i * 1000 for i in range(1, 6)] and not end
    queued, _ = node.list_jobs(state=J.JOB_STATE_QUEUED, schedule="b")
    assert len(queued) == 5
    assert node.list_jobs(state=J.JOB_STATE_RUNNING, schedule="b")[0] == []


def test_schedules_survive_restart_and_snapshot_restore(node: Node, tmp_path) -> None:  # type: ignore[no-untyped-def]
    create(node, spec("a", catchup=S.CATCHUP_POLICY_ALL))
    node.tick(3000)
    leader_round(node)
    pause(node, "a", note="n")
    node.reopen()
    assert node.state.schedule("a").last_fired_time == T0 + 3000  # type: ignore[union-attr]
    assert len(jobs_of(node, "a")) == 3
    data = node.state.snapshot()
    other = Node(tmp_path / "other")
    try:
        other.state.restore(data)
        other.log = list(node.log)  # the entries the snapshot covers
        assert other.state.schedules() == node.state.schedules()
        assert [j.id for j in jobs_of(other, "a")] == [j.id for j in jobs_of(node, "a")]
        assert fire(other, "a", T0 + 3000).code == 9  # the watermark came along
        assert isinstance(other.state, SchedulerState)
    finally:
        other.close()


def test_an_old_leaders_firing_committed_after_a_new_leader_skipped_the_time_changes_nothing(node: Node) -> None:
    from raftsched.scheduler.schedules import plan_commands

    create(node, spec("a", catchup=S.CATCHUP_POLICY_SKIP))
    node.tick(1000)
    schedule = node.state.schedule("a")
    assert schedule is not None
    in_flight, _ = plan_commands(schedule, node.now)  # the old leader's, never acknowledged
    node.tick(3000)
    leader_round(node)  # the new leader records T0 + 1 s as missed
    before = _without_meta(_dump(node))
    assert [node.run(cmd).code for cmd in in_flight] == [9]
    assert _without_meta(_dump(node)) == before

"""Fire-time computation on an injected clock: pure functions of (spec, decided until, now)."""

from __future__ import annotations

import itertools

import pytest

from raftsched.state import firetimes as f
from raftsched.state.firetimes import MISSED, OUTSIDE_WINDOW, PAUSED, Decision
from raftsched.state.schedules import validate_schedule
from raftsched.state.validate import ValidationError
from raftsched.v1 import jobs_pb2, scheduler_pb2

from .helpers import T0, local_ms, spec

S = scheduler_pb2
NY = "America/New_York"


# --- scheduled times ---------------------------------------------------------------------------


def test_cron_with_seconds_fires_on_those_seconds() -> None:
    s = spec(cron="*/15 * * * * *")
    assert f.next_times(s, T0, 5) == [T0 + 10_000, T0 + 25_000, T0 + 40_000, T0 + 55_000, T0 + 70_000]


def test_five_field_cron_fires_on_the_minute() -> None:
    s = spec(cron="*/5 * * * *")
    start = local_ms("UTC", 2024, 1, 1, 10, 2, 30)
    assert f.next_times(s, start, 3) == [local_ms("UTC", 2024, 1, 1, 10, m) for m in (5, 10, 15)]


def test_times_after_is_strictly_after_and_up_to_until() -> None:
    s = spec(every_ms=1000)
    assert f.times_after(s, T0, T0 + 3000, 100) == [T0 + 1000, T0 + 2000, T0 + 3000]
    assert f.times_after(s, T0 + 500, T0 + 2999, 100) == [T0 + 1000, T0 + 2000]
    assert f.times_after(s, T0, T0 + 10_000, 2) == [T0 + 1000, T0 + 2000]


def test_intervals_are_aligned_to_the_epoch_or_to_start() -> None:
    assert f.next_times(spec(every_ms=10_000), T0 + 1234, 2) == [T0 + 10_000, T0 + 20_000]
    anchored = spec(every_ms=10_000, start_ms=T0 + 1234)
    assert f.next_times(anchored, T0, 2) == [T0 + 1234, T0 + 11_234]
    assert f.next_times(anchored, T0 + 1234, 1) == [T0 + 11_234]


def test_start_and_end_bound_the_times() -> None:
    s = spec(every_ms=1000, start_ms=T0 + 3000, end_ms=T0 + 5000)
    assert f.next_times(s, T0, 10) == [T0 + 3000, T0 + 4000, T0 + 5000]
    cron = spec(cron="* * * * * *", start_ms=T0 + 2000, end_ms=T0 + 4500)
    assert f.next_times(cron, T0, 10) == [T0 + 2000, T0 + 3000, T0 + 4000]


def test_spring_forward_time_in_the_gap_fires_right_after_it() -> None:
    # 2024-03-10 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day (Debian cron's rule).
    s = spec(cron="30 2 * * *", timezone=NY)
    assert f.next_times(s, local_ms(NY, 2024, 3, 9, 12), 3) == [
        local_ms(NY, 2024, 3, 10, 3, 0), local_ms(NY, 2024, 3, 11, 2, 30), local_ms(NY, 2024, 3, 12, 2, 30)]


def test_fall_back_repeated_time_fires_once_but_frequent_jobs_fire_in_both_hours() -> None:
    # 2024-11-03 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
    daily = spec(cron="30 1 * * *", timezone=NY)
    first_130 = local_ms(NY, 2024, 11, 3, 1, 30)  # fold=0: the EDT one
    assert f.next_times(daily, local_ms(NY, 2024, 11, 2, 12), 2) == [first_130, local_ms(NY, 2024, 11, 4, 1, 30)]
    every_20 = spec(cron="*/20 * * * *", timezone=NY)
    times = f.next_times(every_20, local_ms(NY, 2024, 11, 3, 0, 50), 7)
    assert [b - a for a, b in itertools.pairwise(times)] == [20 * 60_000] * 6  # real time, no gap


def test_zone_shifts_the_times() -> None:
    start = local_ms("UTC", 2024, 6, 1, 1)
    assert f.next_times(spec(cron="0 9 * * *"), start, 1) == [local_ms("UTC", 2024, 6, 1, 9)]
    tokyo = f.next_times(spec(cron="0 9 * * *", timezone="Asia/Tokyo"), start, 1)
    assert tokyo == [local_ms("UTC", 2024, 6, 2, 0)]


def test_jitter_is_bounded_and_the_same_everywhere() -> None:
    s = spec(every_ms=60_000, jitter_ms=5000)
    values = [f.jitter(s, T0 + i * 60_000) for i in range(500)]
    assert all(0 <= v < 5000 for v in values)
    assert len(set(values)) > 100  # spread, not constant
    assert values == [f.jitter(s, T0 + i * 60_000) for i in range(500)]  # derived, never random
    assert f.jitter(spec(every_ms=60_000), T0) == 0


# --- planning --------------------------------------------------------------------------------


def test_on_time_fires_and_next_due_is_the_following_time() -> None:
    p = f.plan(spec(every_ms=1000), T0, T0 + 1050, paused=False)
    assert p.decisions == [Decision(T0 + 1000, True)]
    assert p.next_due_ms == T0 + 2000


def test_nothing_due_yet() -> None:
    p = f.plan(spec(every_ms=1000), T0, T0 + 999, paused=False)
    assert p.decisions == [] and p.next_due_ms == T0 + 1000


def test_a_later_time_never_overtakes_one_still_waiting_for_its_jitter() -> None:
    s = spec(cron="* * * * * *", jitter_ms=900, name="j")
    t1 = T0 + 1000
    now = t1 + f.jitter(s, t1) - 1  # t1 not due yet
    p = f.plan(s, T0, now, paused=False)
    assert p.decisions == [] and p.next_due_ms == t1 + f.jitter(s, t1)


def _after_outage(catchup: int, **fields: int) -> list[Decision]:
    # Last decided at T0; the leader was gone for 10 s; now is T0 + 10.2 s.
    s = spec(every_ms=1000, catchup=catchup, **fields)  # type: ignore[arg-type]
    return f.plan(s, T0, T0 + 10_200, paused=False).decisions


def test_catchup_skip_fires_only_the_on_time_one() -> None:
    d = _after_outage(S.CATCHUP_POLICY_SKIP)
    assert [x.time for x in d if x.fire] == [T0 + 10_000]  # 200 ms late: on time
    assert [(x.time, x.reason) for x in d if not x.fire] == [(T0 + i * 1000, MISSED) for i in range(1, 10)]


def test_catchup_once_fires_the_newest_missed_time_and_the_on_time_one() -> None:
    d = _after_outage(S.CATCHUP_POLICY_ONCE)
    assert [x.time for x in d if x.fire] == [T0 + 9000, T0 + 10_000]
    assert [(x.time, x.reason) for x in d if not x.fire] == [(T0 + i * 1000, MISSED) for i in range(1, 9)]


def test_catchup_all_fires_every_time() -> None:
    d = _after_outage(S.CATCHUP_POLICY_ALL)
    assert [x.time for x in d] == [T0 + i * 1000 for i in range(1, 11)] and all(x.fire for x in d)


def test_catchup_all_is_bounded_by_window_and_count() -> None:
    d = _after_outage(S.CATCHUP_POLICY_ALL, catchup_window_ms=5000)
    assert [x.time for x in d if x.fire] == [T0 + i * 1000 for i in range(6, 11)]
    assert {x.reason for x in d if not x.fire} == {OUTSIDE_WINDOW}
    d = _after_outage(S.CATCHUP_POLICY_ALL, catchup_max=3)
    assert [x.time for x in d if x.fire] == [T0 + i * 1000 for i in (7, 8, 9, 10)]  # 3 late + the on-time one
    assert [x.time for x in d if not x.fire] == [T0 + i * 1000 for i in range(1, 7)]


def test_catchup_once_outside_the_window() -> None:
    d = _after_outage(S.CATCHUP_POLICY_ONCE, catchup_window_ms=3000)
    assert [x.time for x in d if x.fire] == [T0 + 9000, T0 + 10_000]
    reasons = dict((x.time, x.reason) for x in d if not x.fire)
    assert reasons[T0 + 1000] == OUTSIDE_WINDOW and reasons[T0 + 8000] == MISSED


def test_paused_skips_every_due_time() -> None:
    p = f.plan(spec(every_ms=1000, catchup=S.CATCHUP_POLICY_ALL), T0, T0 + 3000, paused=True)
    assert [(x.time, x.fire, x.reason) for x in p.decisions] == [(T0 + i * 1000, False, PAUSED) for i in (1, 2, 3)]


def test_a_huge_backlog_is_recorded_in_bounded_batches() -> None:
    s = spec(every_ms=1000, catchup=S.CATCHUP_POLICY_ALL)
    p = f.plan(s, T0, T0 + (f.ENUMERATE_LIMIT + 50) * 1000, paused=False)
    assert len(p.decisions) == f.ENUMERATE_LIMIT and not any(x.fire for x in p.decisions)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "field"), [
    ({"cron": "not a cron"}, "cron"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "0 0 31 2 *"}, "cron"),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"every_ms": 999}, "every_ms"),
    ({"every_ms": 1000, "cron": "* * * * *"}, "cron"),
    ({"every_ms": 1000, "timezone": "UTC"}, "timezone"),
    ({"every_ms": 1000, "jitter_ms": 1000}, "jitter_ms"),
    ({"every_ms": 1000, "start_ms": 5, "end_ms": 5}, "end_ms"),
    ({"every_ms": 1000, "catchup_max": 5000}, "catchup_max"),
])
def test_bad_specs_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_schedule(S.ScheduleSpec(name="s", template=jobs_pb2.JobSpec(handler="noop"), **fields), None)
    assert err.value.field == field


def test_neither_cron_nor_every_and_bad_templates_and_names() -> None:
    with pytest.raises(ValidationError, match=r"^cron: give exactly one"):
        validate_schedule(S.ScheduleSpec(name="s", template=jobs_pb2.JobSpec(handler="noop")), None)
    with pytest.raises(ValidationError, match=r"^template.handler"):
        validate_schedule(S.ScheduleSpec(name="s", every_ms=1000), None)
    with pytest.raises(ValidationError, match=r"^template.handler: unknown handler"):
        validate_schedule(spec(template=jobs_pb2.JobSpec(handler="nope")), {"noop"})
    with pytest.raises(ValidationError, match=r"^template.depends_on"):
        validate_schedule(spec(template=jobs_pb2.JobSpec(handler="noop", depends_on=["j1"])), None)
    with pytest.raises(ValidationError, match=r"^name"):
        validate_schedule(spec(name="has space"), None)

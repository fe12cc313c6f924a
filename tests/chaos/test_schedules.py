"""checkers/schedules.py on hand-written final states: an `--every 1s` schedule created at T0+500 ms
and paused at T0+11 s has 11 scheduled times due (T0+1 s .. T0+11 s)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from checkers import CHECKERS, schedules
from checkers.rundata import Run

T0 = 1_700_000_000_000
CREATED = T0 + 500
PAUSE = {"invoke_ms": T0 + 11_000, "ok_ms": T0 + 11_050}
DUE = [T0 + k * 1000 for k in range(1, 12)]
AFTER_PAUSE = [T0 + k * 1000 for k in range(12, 15)]  # recorded as paused before the final read
COLLECTED = T0 + 14_500


def record(name: str, catchup: str, fired: Iterable[int], skipped: list[tuple[int, str]],
           skipped_count: int | None = None, fired_count: int | None = None) -> dict[str, Any]:
    """A Schedule as MessageToDict writes it (uint64 as strings, defaults omitted)."""
    fired = sorted(fired)
    spec: dict[str, Any] = {"name": name, "everyMs": "1000", "template": {"handler": "noop"}}
    if catchup != "skip":
        spec["catchup"] = f"CATCHUP_POLICY_{catchup.upper()}"
    out: dict[str, Any] = {"id": name, "spec": spec, "paused": True, "createdMs": str(CREATED),
                           "firedCount": str(len(fired) if fired_count is None else fired_count),
                           "skippedCount": str(len(skipped) if skipped_count is None else skipped_count)}
    if fired:
        out["lastFiredTime"] = str(fired[-1])
    if skipped:
        out["skipped"] = [{"scheduledTime": str(t), "reason": r} for t, r in skipped]
    return out


def sjob(job_id: str, name: str, t: int, delay_ms: int = 30) -> dict[str, Any]:
    return {"id": job_id, "state": "JOB_STATE_SUCCEEDED", "scheduleId": name, "scheduledTime": str(t),
            "submittedMs": str(t + delay_ms), "spec": {"idempotencyKey": f"schedule/{name}@{CREATED}/{t}"}}


def state(records: list[dict[str, Any]], jobs: list[dict[str, Any]], *, paused: bool = True) -> dict[str, Any]:
    return {"jobs": {j["id"]: j for j in jobs}, "logs": {}, "status": [],
            "schedules": {r["id"]: r for r in records},
            "schedule_pauses": {r["id"]: PAUSE for r in records} if paused else {},
            "collected_ms": COLLECTED}


def check(st: dict[str, Any]) -> dict[str, Any]:
    return schedules.check(Run.from_parts(final_state=st))


def paused_tail() -> list[tuple[int, str]]:
    return [(t, "paused") for t in AFTER_PAUSE]


def test_every_time_fired_once_is_valid_and_figures_are_reported() -> None:
    jobs = [sjob(f"j{i}", "s-all", t, delay_ms=20 + i) for i, t in enumerate(DUE)]
    jobs[4] = sjob("j4", "s-all", DUE[4], delay_ms=3500)  # fired late by a new leader (catch-up)
    result = check(state([record("s-all", "all", DUE, paused_tail())], jobs))
    assert result["valid"], result
    figures = result["per_schedule"]["s-all"]
    assert figures["due"] == 11 and figures["fired"] == 11 and figures["fired_before_pause"] == 11
    assert figures["decided"] == 14 and figures["skipped_by_reason"] == {"paused": 3}
    assert figures["max_delay_ms"] == 3500 and figures["max_delay_job"] == {"id": "j4", "scheduled_time": DUE[4]}
    assert figures["late_fires"] == 1 and figures["catchup"] == "all"
    assert result["totals"]["due"] == 11 and result["totals"]["max_delay_ms"] == 3500


def test_a_time_fired_twice_is_a_duplicate() -> None:
    jobs = [sjob(f"j{i}", "s-all", t) for i, t in enumerate(DUE)] + [sjob("jdup", "s-all", DUE[6], 900)]
    st = state([record("s-all", "all", DUE, paused_tail(), fired_count=12)], jobs)
    result = check(st)
    assert not result["valid"]
    assert result["violations"] == {"duplicate fire": 1}
    example = result["examples"][0]
    assert example["scheduled_time"] == DUE[6] and example["jobs"] == ["j6", "jdup"]
    assert example["schedule"] == "s-all"


def test_a_time_with_neither_job_nor_skip_is_an_unexplained_gap() -> None:
    fired = [t for t in DUE if t != DUE[3]]
    jobs = [sjob(f"j{i}", "s-skip", t) for i, t in enumerate(fired)]
    result = check(state([record("s-skip", "skip", fired, paused_tail())], jobs))
    assert not result["valid"]
    assert result["violations"] == {"unexplained gap": 1}
    assert result["examples"][0]["times"] == [DUE[3]]


def test_a_gap_explained_by_a_skip_reason_is_valid() -> None:
    missed = DUE[3:6]  # the leader was down: catch-up skip records them as missed
    fired = [t for t in DUE if t not in missed]
    jobs = [sjob(f"j{i}", "s-skip", t) for i, t in enumerate(fired)]
    skipped = [(t, "missed") for t in missed] + paused_tail()
    result = check(state([record("s-skip", "skip", fired, skipped)], jobs))
    assert result["valid"], result
    figures = result["per_schedule"]["s-skip"]
    assert figures["due"] == 11 and figures["fired"] == 8 and figures["skipped_before_pause"] == 3
    assert figures["skipped_by_reason"] == {"missed": 3, "paused": 3}


def test_catch_up_all_may_not_skip_a_time_as_missed() -> None:
    fired = [t for t in DUE if t != DUE[2]]
    jobs = [sjob(f"j{i}", "s-all", t) for i, t in enumerate(fired)]
    result = check(state([record("s-all", "all", fired, [(DUE[2], "missed"), *paused_tail()])], jobs))
    assert not result["valid"]
    assert result["violations"] == {"catch-up all skipped a time as missed": 1}


def test_only_the_newest_100_skips_are_listed_and_the_rest_match_by_count() -> None:
    # a 3-minute outage under catch-up skip: 150 missed times, the record lists the newest 100
    times = [T0 + k * 1000 for k in range(1, 201)]
    missed = times[20:170]
    fired = [t for t in times if t not in missed]
    jobs = [sjob(f"j{i}", "s-skip", t) for i, t in enumerate(fired)]
    listed = [(t, "missed") for t in missed[-100:]]
    pause = {"invoke_ms": times[-1], "ok_ms": times[-1] + 50}

    def run(skipped_count: int) -> dict[str, Any]:
        st = state([record("s-skip", "skip", fired, listed, skipped_count=skipped_count)], jobs)
        st["schedule_pauses"] = {"s-skip": pause}
        st["collected_ms"] = times[-1] + 500
        return check(st)

    ok = run(150)
    assert ok["valid"], ok
    figures = ok["per_schedule"]["s-skip"]
    assert figures["due"] == 200 and figures["fired"] == 50
    assert figures["skipped_by_reason"] == {"missed": 100, "unlisted (record keeps 100)": 50}
    short = run(149)  # one old time is accounted for by nothing
    assert not short["valid"] and short["violations"] == {"unexplained gap": 1}
    over = run(151)
    assert not over["valid"] and over["violations"] == {"counts disagree": 1}


def test_times_due_before_the_pause_but_never_decided_are_a_gap() -> None:
    fired = DUE[:6]  # the firing stopped after T0+6 s and nothing recorded the rest
    jobs = [sjob(f"j{i}", "s-once", t) for i, t in enumerate(fired)]
    result = check(state([record("s-once", "once", fired, [])], jobs))
    assert not result["valid"]
    gap = result["examples"][0]
    assert gap["kind"] == "unexplained gap" and gap["count"] == 5 and gap["times"] == DUE[6:]


def test_a_job_for_a_time_after_the_acknowledged_pause_is_flagged() -> None:
    fired = [*DUE, AFTER_PAUSE[0]]
    jobs = [sjob(f"j{i}", "s-all", t) for i, t in enumerate(fired)]
    result = check(state([record("s-all", "all", fired, [(t, "paused") for t in AFTER_PAUSE[1:]])], jobs))
    assert not result["valid"]
    assert result["violations"] == {"fired after the pause was acknowledged": 1}


def test_a_run_without_schedules_is_valid_and_the_checker_is_registered() -> None:
    result = check({"jobs": {"j1": {"id": "j1", "state": "JOB_STATE_SUCCEEDED"}}, "logs": {}})
    assert result == {"valid": True, "schedules": 0, "note": "no schedules in this run"}
    assert CHECKERS["schedules"] is schedules.check


def test_an_old_buffered_time_given_up_late_does_not_hide_the_unlisted_skips() -> None:
    """make chaos (seed 1, this stop): a time buffered behind a job that ran for minutes by a
    leader's clock was given up for a newer one at the end. Its record, old, sits among the newest
    100; the 150 skips before them are unlisted and still match the uncovered old times by count."""
    name = "s-buf"
    times = [T0 + k * 1000 for k in range(1, 201)]
    given_up = times[5]  # buffered early, replaced by times[-1] at the end
    missed = [t for t in times[6:-1] if t != given_up]
    listed = [(t, "missed") for t in missed[-99:]]
    listed.insert(len(listed) - 1, (given_up, "overlap"))
    fired = [*times[:5], times[-1]]
    jobs = [sjob(f"j{i}", name, t) for i, t in enumerate(fired)]
    st = state([record(name, "skip", fired, listed, skipped_count=len(missed) + 1)], jobs)
    st["schedule_pauses"] = {name: {"invoke_ms": times[-1], "ok_ms": times[-1] + 50}}
    st["collected_ms"] = times[-1] + 500
    result = check(st)
    assert result["valid"], result
    del listed[-3]  # a recent time neither fired nor listed, with the count unchanged
    st["schedules"][name] = record(name, "skip", fired, listed, skipped_count=len(missed) + 1)
    assert check(st)["violations"] == {"unexplained gap": 1, "counts disagree": 1}


def test_buffer_one_time_waiting_for_its_job_is_not_a_gap_and_the_leader_stamp_counts() -> None:
    """buffer-one records a time as fired (buffered) before its job exists; a job created before
    its time by the leader's own clock is early whatever the harness's clock said."""
    name = "s-buffer"
    skipped = [(t, "paused") for t in AFTER_PAUSE]
    rec = record(name, "skip", DUE, skipped, fired_count=10)
    jobs = [sjob(f"j{k}", name, t) for k, t in enumerate(DUE[:10])]
    assert not check(state([rec], jobs))["valid"]  # the newest fired time has no job
    rec["buffered"] = True
    assert check(state([rec], jobs))["valid"]
    jobs[3]["submittedMs"] = str(DUE[3] - 5_000)
    result = check(state([rec], jobs))
    assert result["violations"] == {"fired before its time by the leader's own clock": 1}

"""Schedules on a real cluster: 3 `raftsched node` processes and one executor on 127.0.0.1.

`--every 1s --catchup all` across a leader kill fires every second exactly once; with
`--catchup skip` the seconds nobody could fire show up in `schedule get` as skipped, with a reason.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from integration.cluster import FAST, Cluster, run_cli, wait_for

from raftsched.v1 import jobs_pb2

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RUN_S = 15


def _cluster(tmp_path: Path, timing: Sequence[str]) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "cluster", size=3, timing=timing)
    ok = False
    try:
        c.start_all()
        c.wait_leader(30)
        c.start_executor("e1", 8)
        c.wait_executors("e1")
        yield c
        ok = True
    finally:
        if not ok:
            print(c.logs())
        c.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from _cluster(tmp_path, FAST)


def _cli(c: Cluster, *args: str) -> str:
    result = run_cli(*args, cluster=c.cluster)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _kill_leader_and_restart(c: Cluster) -> None:
    leader = c.wait_leader(20)
    c.kill(leader)
    c.wait_leader(20, among=[n for n in c.ids if n != leader])
    c.start(leader)


def _scheduled_jobs(c: Cluster, name: str) -> list[jobs_pb2.Job]:
    return list(c.client().iter_jobs(schedule=name))


def test_every_second_with_catchup_all_fires_each_second_once_across_a_leader_kill(cluster: Cluster) -> None:
    _cli(cluster, "schedule", "create", "tick", "--every", "1s", "--catchup", "all", "--handler", "noop")
    created = cluster.client().get_schedule("tick").created_ms
    time.sleep(5)
    _kill_leader_and_restart(cluster)
    time.sleep(max(0.0, RUN_S - (time.time() * 1000 - created) / 1000))
    paused = cluster.client().pause_schedule("tick", "end of test")
    last = paused.last_fired_time
    jobs = _scheduled_jobs(cluster, "tick")
    times = [j.scheduled_time for j in jobs]
    assert len(times) == len(set(times)), "a scheduled time fired twice"
    expected = list(range((created // 1000 + 1) * 1000, last + 1, 1000))
    assert sorted(times) == expected, "every second from creation to the last firing, once"
    assert len(expected) >= RUN_S - 2
    assert all(j.schedule_id == "tick" for j in jobs)
    delays = [j.submitted_ms - j.scheduled_time for j in jobs]
    print(f"fired={len(times)} skipped={paused.skipped_count} max delay={max(delays)} ms")


def test_catchup_skip_records_the_missed_seconds(cluster: Cluster) -> None:
    _cli(cluster, "schedule", "create", "skipper", "--every", "1s", "--catchup", "skip", "--handler", "noop")
    time.sleep(3)
    leader = cluster.wait_leader(20)
    frozen = [leader, next(n for n in cluster.ids if n != leader)]
    for nid in frozen:  # SIGSTOP the leader and a follower: no quorum, nobody can fire
        cluster.pause(nid)
    try:
        time.sleep(4)
    finally:
        for nid in frozen:
            cluster.resume(nid)

    def missed() -> list[dict[str, object]]:
        shown = json.loads(_cli(cluster, "schedule", "get", "skipper", "--json"))
        return [s for s in shown.get("skipped", []) if s["reason"] == "missed"]

    skipped = wait_for(missed, 20, "missed seconds recorded")
    schedule = cluster.client().pause_schedule("skipper")
    fired = {j.scheduled_time for j in _scheduled_jobs(cluster, "skipper")}
    recorded = {int(s["scheduledTime"]) for s in skipped}  # type: ignore[call-overload]
    assert not fired & recorded
    assert schedule.skipped_count >= len(recorded) >= 1
    shown = _cli(cluster, "schedule", "get", "skipper")
    assert "missed" in shown


def test_bad_specs_are_one_clear_line_and_nothing_is_created(cluster: Cluster) -> None:
    for args, field in ((["--cron", "not a cron"], "cron"), (["--cron", "* * * * *", "--tz", "Mars/Base"], "timezone"),
                        (["--every", "500ms"], "every_ms")):
        result = run_cli("schedule", "create", "bad", *args, "--handler", "noop", cluster=cluster.cluster)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and field in result.stderr, result.stderr
    assert cluster.client().list_schedules().schedules == []


def test_get_shows_next_fire_times_and_job_list_filters(cluster: Cluster) -> None:
    _cli(cluster, "schedule", "create", "nightly", "--cron", "0 30 2 * * *", "--tz", "Europe/Berlin",
         "--handler", "noop")
    shown = json.loads(_cli(cluster, "schedule", "get", "nightly", "--json"))
    times = [int(t) for t in shown["nextFireTimes"]]
    assert len(times) == 5 and all(b - a in (23, 24, 25) for a, b in ((x // 3_600_000, y // 3_600_000)
                                                                       for x, y in itertools.pairwise(times)))
    job = json.loads(_cli(cluster, "schedule", "trigger", "nightly", "--json"))
    assert job["scheduleId"] == "nightly" and job["scheduledTime"]
    listed = _cli(cluster, "job", "list", "--schedule", "nightly", "--json").strip().splitlines()
    assert [json.loads(line)["id"] for line in listed] == [job["id"]]
    _cli(cluster, "schedule", "delete", "nightly")
    assert _cli(cluster, "schedule", "list", "--json").strip() == ""

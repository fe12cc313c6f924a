"""History that lasts but does not hoard (SPEC §5, promise 12): what the leader's retention round
picks, checked against a naive recount for random histories; what a purge may and may not delete;
keys forgotten with their job or their window; paging that stays exact while jobs come and go."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sm_harness import T0, TERMINAL, Node, all_jobs, check_indexes, list_page, temp_node
from test_sm_properties import guided_logs

from raftsched.scheduler.retention import RetentionPolicy, plan
from raftsched.state import commands as c
from raftsched.state import keys
from raftsched.v1 import jobs_pb2, scheduler_pb2

J = jobs_pb2
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def naive_expired(node: Node, cutoff: int) -> list[str]:
    jobs = all_jobs(node.state)
    live_deps = {dep for j in jobs if j.state not in TERMINAL for dep in j.spec.depends_on}
    old = [j for j in jobs if j.state in TERMINAL and j.updated_ms < cutoff and j.id not in live_deps]
    return [j.id for j in sorted(old, key=lambda j: (j.updated_ms, j.seq))]


def naive_keys(node: Node, cutoff: int) -> list[str]:
    made = []
    for family, key, value in node.state.records():
        if family == keys.IDEM:
            made.append((keys.idem_value_parts(value)[0], key.decode()))
    return [k for t, k in sorted(made) if t < cutoff]


@SETTINGS
@given(log=guided_logs(), age=st.integers(0, 20_000), limit=st.integers(1, 5))
def test_the_retention_round_picks_exactly_the_old_unheld_finished_jobs(log: list[bytes | None], age: int,
                                                                       limit: int) -> None:
    with temp_node() as node:
        node.replay(log)
        cutoff = T0 + age
        expected = naive_expired(node, cutoff)
        assert node.state.expired_jobs(cutoff, limit, 10_000) == expected[:limit]
        assert node.state.expired_keys(cutoff, limit) == naive_keys(node, cutoff)[:limit]
        # Purging all of them, batch by batch as the leader would, leaves only the young and the held.
        before = node.state.counters()["jobs_total"]
        while ids := node.state.expired_jobs(cutoff, limit, 10_000):
            result = node.run(c.purge(job_ids=ids))
            assert result.refused_items == 0, result.error
        assert node_ids(node) == {j.id for j in all_jobs(node.state)}
        assert node.state.counters()["jobs_total"] == before - len(expected)
        assert naive_expired(node, cutoff) == []
        check_indexes(node.state)


def node_ids(node: Node) -> set[str]:
    return {f"j{keys.read_u64(k)}" for family, k, _ in node.state.records() if family == keys.JOBS}


@SETTINGS
@given(log=guided_logs(), data=st.data())
def test_replicas_applying_the_same_purges_hold_the_same_state(log: list[bytes | None], data: Any) -> None:
    """Purges are commands like any other: the same log gives the same bytes on every replica,
    whatever the batching, and a purge repeated (a new leader proposing it again) changes nothing."""
    with temp_node() as scratch:
        scratch.replay(log)
        ids = scratch.state.expired_jobs(2**63, 50, 10_000)
    chosen = data.draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([]), label="purged")
    purge = c.encode(c.purge(job_ids=chosen, idempotency_keys=["k1"]), time_ms=T0 + 10**7)
    full = [*log, purge, purge]
    with temp_node() as one, temp_node() as other:
        for i, data_i in enumerate(full, start=1):
            one.state.apply([(i, data_i)])
        other.state.apply(list(enumerate(full, start=1)))
        assert one.state.fingerprint() == other.state.fingerprint()
        check_indexes(one.state)


def test_a_job_a_live_job_depends_on_is_kept_until_its_dependants_end(node: Node) -> None:
    node.up()
    dep = node.submit()
    node.run(c.cancel(dep.id))
    waiting = node.submit(depends_on=[dep.id])  # SKIPPED at once: the dependency did not succeed
    assert node.job(waiting.id).state == J.JOB_STATE_SKIPPED
    good = node.submit()
    node.assign(good.id)
    node.finish(good.id, 1, J.ATTEMPT_END_SUCCEEDED)
    child = node.submit(depends_on=[good.id])  # QUEUED: its dependency succeeded, it still holds it
    assert node.job(child.id).state == J.JOB_STATE_QUEUED
    node.tick(60_000)
    assert good.id not in node.state.expired_jobs(node.now, 100, 1000)
    result = node.run(c.purge(job_ids=[good.id]))
    assert result.refused_items == 1 and "a live job depends on it" in result.error
    assert node.state.get_job(good.id) is not None
    node.run(c.cancel(child.id))
    assert good.id in node.state.expired_jobs(node.now + 1, 100, 1000)
    assert node.run(c.purge(job_ids=[good.id])).refused_items == 0
    assert node.state.get_job(good.id) is None


def test_a_live_job_is_never_purged(node: Node) -> None:
    job = node.submit()
    result = node.run(c.purge(job_ids=[job.id, "j999", "nonsense"]))
    assert result.refused_items == 3
    assert node.job(job.id).state == J.JOB_STATE_QUEUED


def test_a_purged_jobs_key_is_forgotten_and_a_resubmit_makes_a_new_job(node: Node) -> None:
    first = node.submit(idempotency_key="nightly")
    assert node.submit(idempotency_key="nightly").id == first.id
    node.run(c.cancel(first.id))
    node.run(c.purge(job_ids=[first.id]))
    assert node.state.job_by_key("nightly") is None
    again = node.submit(idempotency_key="nightly")
    assert again.id != first.id and node.state.job_by_key("nightly").id == again.id


def test_keys_expire_by_their_window_while_their_job_stays(node: Node) -> None:
    job = node.submit(idempotency_key="k")
    node.tick(10_000)
    policy = RetentionPolicy(job_retention_ms=0, idempotency_window_ms=5_000)
    commands = plan(node.state, policy, node.now)
    assert [list(cmd.purge.idempotency_keys) for cmd in commands] == [["k"]]
    for cmd in commands:
        node.run(cmd)
    assert node.state.job_by_key("k") is None and node.state.get_job(job.id) is not None
    assert node.submit(idempotency_key="k").id != job.id
    assert node.state.counters()["keys_forgotten"] == 1


def fire(node: Node, name: str, t: int) -> jobs_pb2.Job:
    cmd = c.commands_pb2.FireScheduleCmd(name=name, scheduled_time=t)
    result = node.run(c.commands_pb2.Command(fire_schedule=cmd))
    assert not result.error, result.error
    return result.job


def create(node: Node, name: str, **fields: Any) -> None:
    spec = scheduler_pb2.ScheduleSpec(name=name, every_ms=1000, template=J.JobSpec(handler="noop"), **fields)
    cmd = c.commands_pb2.Command(create_schedule=c.commands_pb2.CreateScheduleCmd(spec=spec))
    assert not node.run(cmd).error


def test_schedule_history_limits_keep_the_newest_of_each_kind(node: Node) -> None:
    node.up()
    create(node, "nightly", keep_succeeded=2, keep_failed=1)
    made = []
    for i, ok in enumerate([True] * 4 + [False] * 3):
        job = fire(node, "nightly", T0 + (i + 1) * 1000)
        if ok:
            node.assign(job.id)
            node.finish(job.id, 1, J.ATTEMPT_END_SUCCEEDED)
        else:
            node.run(c.cancel(job.id))
        made.append(job.id)
    live = fire(node, "nightly", T0 + 9000)  # not finished: never counted, never purged
    policy = RetentionPolicy(job_retention_ms=0, idempotency_window_ms=0)
    for cmd in plan(node.state, policy, node.now):
        node.run(cmd)
    kept = [j.id for j in list_page(node.state, schedule="nightly", page_size=100)[0]]
    assert kept == [made[2], made[3], made[6], live.id]  # the last 2 succeeded, the last failed
    assert plan(node.state, policy, node.now) == []
    check_indexes(node.state)


def test_old_skipped_fire_records_go_but_the_watermark_stays(node: Node) -> None:
    create(node, "s")
    skipped = [scheduler_pb2.SkippedFire(scheduled_time=T0 + i * 1000, reason="missed") for i in range(1, 6)]
    node.run(c.commands_pb2.Command(skip_fires=c.commands_pb2.SkipFiresCmd(name="s", fires=skipped)))
    node.tick(3_500)
    for cmd in plan(node.state, RetentionPolicy(job_retention_ms=500, idempotency_window_ms=0), node.now):
        node.run(cmd)
    schedule = node.state.schedule("s")
    assert schedule is not None
    assert [s.scheduled_time for s in schedule.skipped] == [T0 + 3000, T0 + 4000, T0 + 5000]
    assert schedule.last_skipped_time == T0 + 5000 and schedule.skipped_count == 5
    assert fire_refused(node, "s", T0 + 2000)  # still decided: the watermark did not move back


def fire_refused(node: Node, name: str, t: int) -> bool:
    cmd = c.commands_pb2.FireScheduleCmd(name=name, scheduled_time=t)
    return "already decided" in node.run(c.commands_pb2.Command(fire_schedule=cmd)).error


@SETTINGS
@given(data=st.data(), newest_first=st.booleans(), state=st.sampled_from([0, J.JOB_STATE_QUEUED,
                                                                         J.JOB_STATE_CANCELLED]))
def test_a_full_walk_during_submits_and_purges_meets_every_survivor_once(data: Any, newest_first: bool,
                                                                         state: int) -> None:
    with temp_node() as node:
        for _ in range(data.draw(st.integers(0, 30), label="initial")):
            job = node.submit()
            if data.draw(st.booleans()):
                node.run(c.cancel(job.id))
        at_start = all_jobs(node.state)
        seen: list[str] = []
        deleted: set[str] = set()
        token = ""
        while True:
            page, token = list_page(node.state, page_size=data.draw(st.integers(1, 4)), page_token=token,
                                    newest_first=newest_first, state=state)
            assert all(not state or j.state == state for j in page)
            seen.extend(j.id for j in page)
            for _ in range(data.draw(st.integers(0, 3), label="meanwhile")):
                if data.draw(st.booleans(), label="submit or purge"):
                    job = node.submit()
                    if data.draw(st.booleans()):
                        node.run(c.cancel(job.id))
                else:
                    gone = node.state.expired_jobs(2**63, data.draw(st.integers(1, 3)), 1000)
                    node.run(c.purge(job_ids=gone))
                    deleted.update(gone)
            if not token:
                break
        assert len(seen) == len(set(seen)), "a job appeared twice"
        # The jobs there from start to end kept their state (only new jobs were cancelled).
        survivors = {j.id for j in at_start if j.id not in deleted and (not state or j.state == state)}
        assert survivors <= set(seen), f"missed {sorted(survivors - set(seen))}"
        order = [keys.seq_of(i) for i in seen]
        old = [seq for seq in order if f"j{seq}" in {j.id for j in at_start}]
        assert old == sorted(old, reverse=newest_first), "the walk left its order"

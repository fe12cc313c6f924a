"""Property tests: determinism, crash replay, snapshot round trips, apply never raises.

Commands are drawn from a small world (jobs j1..j8, executors e1..e3, attempts 0..4) so random
sequences often hit the interesting transitions: assign after a retry, a stale result, an executor
lost while a job runs, a dependency failing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sm_harness import T0, TERMINAL, Node, check_indexes, list_page, temp_node

from raftsched.state import commands as c
from raftsched.v1 import jobs_pb2

J = jobs_pb2
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

job_ids = st.sampled_from([f"j{i}" for i in range(1, 9)])
executors = st.sampled_from(["e1", "e2", "e3"])
attempts = st.integers(0, 4)
ends = st.sampled_from(list(J.AttemptEnd.values()))


@st.composite
def specs(draw: Any) -> jobs_pb2.JobSpec:
    spec = J.JobSpec(
        handler=draw(st.sampled_from(["noop", "sleep"])),
        priority=draw(st.integers(-2, 2)),
        max_attempts=draw(st.integers(0, 3)),
        timeout_ms=draw(st.sampled_from([0, 0, 500])),
        slots=draw(st.integers(0, 2)),
        idempotency_key=draw(st.sampled_from(["", "", "k1", "k2"])),
        depends_on=draw(st.lists(job_ids, max_size=2)),
        backoff=J.RetryBackoff(initial_ms=draw(st.sampled_from([0, 100]))),
    )
    if draw(st.integers(0, 9)) == 0:
        spec.command.append("true")  # both command and handler: refused
    return spec


commands = st.one_of(
    st.lists(specs(), min_size=1, max_size=3).map(lambda s: c.submit(*s)),
    job_ids.map(c.cancel),
    st.lists(st.tuples(job_ids, attempts, executors), min_size=1, max_size=3).map(c.assign),
    st.tuples(executors, st.lists(st.tuples(job_ids, attempts), min_size=1, max_size=2)).map(
        lambda t: c.started(*t)
    ),
    st.tuples(executors, job_ids, attempts, ends).map(
        lambda t: c.finished(t[0], [c.finished_item(t[1], t[2], t[3], error="e")])
    ),
    st.lists(st.tuples(job_ids, attempts), min_size=1, max_size=2).map(c.timed_out),
    st.tuples(executors, st.integers(0, 3)).map(lambda t: c.executor_up(t[0], slots=t[1], handlers=["h"])),
    executors.map(c.executor_down),
    executors.map(c.drain),
    st.lists(job_ids, min_size=1, max_size=4).map(lambda ids: c.purge(job_ids=ids)),
    st.lists(st.sampled_from(["k1", "k2", "k3"]), min_size=1, max_size=2).map(
        lambda ks: c.purge(idempotency_keys=ks)),
)


@st.composite
def logs(draw: Any, max_size: int = 40) -> list[bytes | None]:
    """A committed log: encoded commands stamped with a growing time, some no-ops and garbage."""
    out: list[bytes | None] = []
    now = T0
    for _ in range(draw(st.integers(1, max_size))):
        now += draw(st.integers(0, 1500))
        kind = draw(st.integers(0, 19))
        if kind == 0:
            out.append(None)
        elif kind == 1:
            out.append(draw(st.binary(max_size=30)))
        else:
            out.append(c.encode(draw(commands), time_ms=now))
    return out


@st.composite
def guided_logs(draw: Any, max_size: int = 40) -> list[bytes | None]:
    """Like `logs`, but most commands are ones that apply to the state so far (found by applying
    them to a scratch node as they are drawn), so runs reach retries, timeouts, successes and
    cascades instead of stopping at refusals."""
    out: list[bytes | None] = []
    with temp_node() as scratch:
        for _ in range(draw(st.integers(1, max_size))):
            scratch.tick(draw(st.integers(0, 1500)))
            cmd = draw(plausible(scratch)) if draw(st.integers(0, 3)) else draw(commands)
            out.append(c.encode(cmd, time_ms=scratch.now))
            scratch.append(out[-1])
    return out


def plausible(node: Node) -> st.SearchStrategy[c.Command]:
    s = node.state
    connected = [e.id for e in s.executors() if e.state == J.EXECUTOR_STATE_CONNECTED]
    queued = s.queued(node.now, 5)
    current = [(e, r) for e in ("e1", "e2", "e3") for r in s.attempts_on(e)]
    options: list[st.SearchStrategy[c.Command]] = [
        st.lists(specs(), min_size=1, max_size=2).map(lambda x: c.submit(*x)),
        executors.map(lambda e: c.executor_up(e, slots=3, handlers=["h"])),
    ]
    if queued and connected:
        options.append(st.tuples(st.sampled_from(queued), st.sampled_from(connected)).map(
            lambda t: c.assign([(t[0].id, (t[0].attempts[-1].number if t[0].attempts else 0) + 1, t[1])])))
    if current:
        pick = st.sampled_from(current)
        options.append(pick.map(lambda t: c.started(t[0], [(t[1].job_id, t[1].attempt)])))
        options.append(st.tuples(pick, ends).map(
            lambda t: c.finished(t[0][0], [c.finished_item(t[0][1].job_id, t[0][1].attempt, t[1])])))
        options.append(pick.map(lambda t: c.cancel(t[1].job_id)))
        options.append(pick.map(lambda t: c.executor_down(t[0])))
    late = s.timed_out(node.now)
    if late:
        options.append(st.just(c.timed_out([(r.job_id, r.attempt) for r in late])))
    finished = s.expired_jobs(node.now + 1, 8, 100)
    if finished:  # what the leader's retention round would pick, then purge
        options.append(st.lists(st.sampled_from(finished), min_size=1, max_size=3).map(
            lambda ids: c.purge(job_ids=ids)))
    return st.one_of(options)


def apply_one_by_one(node: Node, log: list[bytes | None]) -> None:
    """Apply entry by entry, checking the indexes and that terminal jobs never change."""
    final: dict[str, jobs_pb2.Job] = {}
    for data in log:
        node.append(data)
        check_indexes(node.state)
        for job_id, job in list(final.items()):
            now = node.state.get_job(job_id)
            if now is None:  # purged: only a finished job nothing live depends on (check_indexes)
                del final[job_id]
                continue
            assert fate(now) == fate(job), "a terminal job changed"
        jobs, _ = node.list_jobs(page_size=1000)
        final.update({j.id: j for j in jobs if j.state in TERMINAL and j.id not in final})


def fate(job: jobs_pb2.Job) -> tuple[Any, ...]:
    """What may not change once a job is terminal (the stale counter and a late report on a
    cancelled attempt's output may)."""
    ends = [(a.number, a.executor, a.end, a.finished_ms) for a in job.attempts]
    return (job.state, job.state_reason, job.updated_ms, job.not_before_ms, ends)


@SETTINGS
@given(log=st.one_of(logs(), guided_logs()))
def test_same_log_gives_same_state_whatever_the_batching(log: list[bytes | None]) -> None:
    with temp_node() as one, temp_node() as whole:
        apply_one_by_one(one, log)
        whole.state.apply(list(enumerate(log, start=1)))
        assert one.state.applied_index == whole.state.applied_index == len(log)
        assert one.state.snapshot() == whole.state.snapshot()


@SETTINGS
@given(log=st.one_of(logs(), guided_logs()), data=st.data())
def test_results_nobody_waits_for_change_nothing_but_the_result(log: list[bytes | None], data: Any) -> None:
    """A follower applies without wanting results (raft_driver passes its waiters): the state is
    the same as with every result built, and a wanted entry's result is the same too."""
    wanted = data.draw(st.sets(st.integers(1, max(1, len(log)))), label="wanted")
    with temp_node() as quiet, temp_node() as full:
        entries = list(enumerate(log, start=1))
        got = quiet.state.apply(entries, wanted)
        expected = full.state.apply(entries)
        assert quiet.state.snapshot() == full.state.snapshot()
        for (index, _), result, reference in zip(entries, got, expected, strict=True):
            assert result == (reference if index in wanted else None), index


@SETTINGS
@given(log=st.one_of(logs(), guided_logs()), data=st.data())
def test_replay_after_restart_gives_the_same_state(log: list[bytes | None], data: Any) -> None:
    crash_at = data.draw(st.integers(0, len(log)), label="crash_at")
    replay_from = data.draw(st.integers(1, crash_at + 1), label="replay_from")
    with temp_node() as crashed, temp_node() as reference:
        reference.state.apply(list(enumerate(log, start=1)))
        crashed.state.apply(list(enumerate(log[:crash_at], start=1)))
        crashed.reopen()
        assert crashed.state.applied_index == crash_at
        replay = list(enumerate(log, start=1))[replay_from - 1 :]
        results = crashed.state.apply(replay)
        assert all(r is None for r in results[: crash_at - replay_from + 1])  # already applied
        assert crashed.state.snapshot() == reference.state.snapshot()
        check_indexes(crashed.state)


@SETTINGS
@given(log=st.one_of(logs(), guided_logs()), data=st.data())
def test_lost_unsynced_tail_is_rebuilt_by_replay(log: list[bytes | None], data: Any) -> None:
    """The apply batch is not synced: model losing it by restoring an older snapshot, then replay."""
    durable = data.draw(st.integers(0, len(log)), label="durable")
    with temp_node() as node, temp_node() as reference:
        reference.state.apply(list(enumerate(log, start=1)))
        node.state.apply(list(enumerate(log[:durable], start=1)))
        older = node.state.snapshot()
        node.state.apply(list(enumerate(log, start=1)))
        node.state.restore(older)
        assert node.state.applied_index == durable
        node.state.apply(list(enumerate(log, start=1)))
        assert node.state.snapshot() == reference.state.snapshot()


@SETTINGS
@given(log=st.one_of(logs(), guided_logs()), other=logs(max_size=10))
def test_snapshot_restore_round_trip(log: list[bytes | None], other: list[bytes | None]) -> None:
    with temp_node() as source, temp_node() as target:
        source.state.apply(list(enumerate(log, start=1)))
        target.state.apply(list(enumerate(other, start=1)))  # earlier state, to be discarded
        blob = source.state.snapshot()
        target.state.restore(blob)
        assert target.state.snapshot() == blob
        assert queries(target) == queries(source)
        target.reopen()
        assert queries(target) == queries(source)
        check_indexes(target.state)


def queries(node: Node) -> dict[str, Any]:
    s = node.state
    far = 2**64 - 1
    return {
        "applied": s.applied_index,
        "jobs": list_page(s, page_size=1000),
        "executors": s.executors(),
        "queued": s.queued(far, 1000),
        "timed_out": s.timed_out(far),
        "on": {e: s.attempts_on(e) for e in ("e1", "e2", "e3")},
        "counters": s.counters(),
        "handlers": s.known_handlers(),
        "fences": [s.check_fence(f"j{i}", n) for i in range(1, 9) for n in range(4)],
        "keys": [s.job_by_key(k) for k in ("k1", "k2")],
    }


@settings(max_examples=200, deadline=None)
@given(garbage=st.lists(st.binary(max_size=64), min_size=1, max_size=20), seed=logs(max_size=10))
def test_apply_never_raises_on_random_bytes(garbage: list[bytes], seed: list[bytes | None]) -> None:
    # Random bytes, and valid commands with a byte flipped (which decode into odd values).
    mutated = [bytes(d[:3]) + bytes([d[3] ^ 0x41]) + d[4:] for d in seed if d and len(d) > 4]
    with temp_node() as node:
        results = node.state.apply(list(enumerate(garbage + mutated + seed, start=1)))
        assert len(results) == len(garbage) + len(mutated) + len(seed)
        assert node.state.applied_index == len(results)
        check_indexes(node.state)

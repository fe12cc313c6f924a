"""Notification sinks in the state machine (SPEC §10, promise 13): validation, events made where
apply decides them, ids derived from the log (the same on every replica, whatever the batching),
bounded outboxes, and acknowledgements that are idempotent."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sm_harness import T0, Node, temp_node

from raftsched.state import commands as c
from raftsched.state import notify
from raftsched.state.validate import ValidationError
from raftsched.v1 import commands_pb2, jobs_pb2, notify_pb2, scheduler_pb2

J = jobs_pb2
N = notify_pb2


def add(name: str = "hook", url: str = "http://127.0.0.1:9/x", secret: bytes = b"s3cret",
        events: tuple[str, ...] = ()) -> commands_pb2.Command:
    sink = N.NotifySink(name=name, url=url, secret=secret, events=events)
    return commands_pb2.Command(notify_add=commands_pb2.NotifyAddCmd(sink=sink))


def ack(sink: str, delivered: list[str] = (), expired: list[str] = (), failed: int = 0,  # type: ignore[assignment]
        error: str = "") -> commands_pb2.Command:
    progress = N.NotifyProgress(sink=sink, delivered=delivered, expired=expired, failed_attempts=failed,
                                last_error=error)
    return commands_pb2.Command(notify_ack=commands_pb2.NotifyAckCmd(sinks=[progress]))


def pending(node: Node, sink: str = "hook") -> list[N.NotifyEvent]:
    return node.state.pending_events(sink, skip=lambda _id: False, limit=100_000, scan=100_000)


def fail_job(node: Node, attempts: int = 1) -> str:
    job = node.submit("fail", max_attempts=attempts)
    for n in range(1, attempts + 1):
        node.tick(1000)
        node.assign(job.id, attempt=n)
        node.finish(job.id, n, J.ATTEMPT_END_FAILED, error="boom", exit_code=3)
    assert node.job(job.id).state == J.JOB_STATE_FAILED
    return job.id


@pytest.mark.parametrize(("field", "sink"), [
    ("name", N.NotifySink(name="", url="http://a/")),
    ("name", N.NotifySink(name="-x", url="http://a/")),
    ("name", N.NotifySink(name="a\x00b", url="http://a/")),
    ("name", N.NotifySink(name="x" * 65, url="http://a/")),
    ("url", N.NotifySink(name="a", url="ftp://host/")),
    ("url", N.NotifySink(name="a", url="javascript:alert(1)")),
    ("url", N.NotifySink(name="a", url="file:///etc/passwd")),
    ("url", N.NotifySink(name="a", url="http:///nohost")),
    ("url", N.NotifySink(name="a", url="http://host/a b")),
    ("url", N.NotifySink(name="a", url="http://host:99999/")),
    ("url", N.NotifySink(name="a", url="http://h/" + "x" * 3000)),
    ("secret", N.NotifySink(name="a", url="https://h/", secret=b"x" * 1025)),
    ("events", N.NotifySink(name="a", url="https://h/", events=["job.failed", "job.exploded"])),
    ("events", N.NotifySink(name="a", url="https://h/", events=["job.failed", "job.failed"])),
])
def test_a_bad_sink_is_refused_naming_the_field(field: str, sink: N.NotifySink) -> None:
    with pytest.raises(ValidationError) as err:
        notify.validate_sink(sink)
    assert err.value.field == field


def test_good_sinks_are_accepted() -> None:
    for url in ("http://127.0.0.1:8080/hook", "https://hooks.example.com/a?b=c", "http://[::1]:80/"):
        notify.validate_sink(N.NotifySink(name="ok.sink_1", url=url, secret=b"k" * 1024, events=["test"]))


def test_add_refuses_a_duplicate_and_a_bad_sink_at_apply_and_changes_nothing(node: Node) -> None:
    assert not node.run(add()).error
    assert node.run(add()).code == notify.ALREADY_EXISTS
    assert node.run(add("bad", url="gopher://x/")).code == notify.INVALID_ARGUMENT
    assert [s.name for s in node.state.notify_sinks()] == ["hook"]
    assert node.state.notify_sinks()[0].has_secret


def test_a_failed_job_makes_one_event_for_each_sink_that_asked(node: Node) -> None:
    node.run(add("all"))
    node.run(add("failures", events=("job.failed",)))
    node.run(add("leaders", events=("leader.changed",)))
    node.up()
    job_id = fail_job(node, attempts=2)
    [event] = pending(node, "all")
    assert pending(node, "failures") == [event] and pending(node, "leaders") == []
    assert event.type == "job.failed" and event.time_ms == node.now
    data = json.loads(event.data_json)
    assert (data["job_id"], data["attempts"], data["error"], data["exit_code"]) == (job_id, 2, "boom", 3)
    assert node.state.event_counts() == {"job.failed": 1}
    # the id names the entry that made it: the finish of the last attempt
    assert event.id == f"e{len(node.log)}.0"


def test_timeouts_fences_executor_loss_and_leader_changes_make_events(node: Node) -> None:
    node.run(add())
    node.up("e1")
    slow = node.submit("sleep", timeout_ms=1000, max_attempts=3)
    node.assign(slow.id)
    node.tick(5000)
    node.run(c.timed_out([(slow.id, 1)]))
    node.tick(5000)  # past the retry backoff
    assert not node.assign(slow.id, attempt=2).error
    node.finish(slow.id, 2, J.ATTEMPT_END_FENCED, error="lease expired")
    node.tick(5000)
    assert not node.assign(slow.id, attempt=3).error
    node.run(c.executor_down("e1", "silent"))
    node.run(c.executor_down("e1", "again"))  # already down: no second event
    node.run(commands_pb2.Command(leader_changed=commands_pb2.LeaderChangedCmd(leader="n2", term=7)))
    kinds = [e.type for e in pending(node)]
    assert kinds == ["job.attempt_timed_out", "job.attempt_fenced", "executor.down", "job.failed",
                     "leader.changed"]
    down = json.loads(pending(node)[2].data_json)
    assert (down["executor"], down["lost_attempts"], down["lost_jobs"]) == ("e1", 1, [slow.id])
    # one entry made two events: executor.down then the job.failed it caused, ranked 0 and 1
    assert pending(node)[2].id.endswith(".0") and pending(node)[3].id.endswith(".1")


def test_every_skipped_schedule_time_makes_an_event(node: Node) -> None:
    node.run(add(events=("schedule.skipped",)))
    spec = scheduler_pb2.ScheduleSpec(name="s", every_ms=60_000, template=J.JobSpec(handler="noop"))
    node.run(commands_pb2.Command(create_schedule=commands_pb2.CreateScheduleCmd(spec=spec)))
    fires = [scheduler_pb2.SkippedFire(scheduled_time=T0 + i * 60_000, reason="missed") for i in (1, 2)]
    node.run(commands_pb2.Command(skip_fires=commands_pb2.SkipFiresCmd(name="s", fires=fires)))
    events = [json.loads(e.data_json) for e in pending(node)]
    assert events == [{"schedule": "s", "scheduled_time": T0 + 60_000, "reason": "missed"},
                      {"schedule": "s", "scheduled_time": T0 + 120_000, "reason": "missed"}]


def test_event_ids_are_the_same_on_every_replica_whatever_the_batching() -> None:
    log = [c.encode(add(), time_ms=T0), c.encode(c.executor_up("e1", 4), time_ms=T0)]
    log += [c.encode(c.submit(J.JobSpec(handler="fail", max_attempts=1)), time_ms=T0) for _ in range(3)]
    log += [c.encode(c.assign([(f"j{i}", 1, "e1") for i in (1, 2, 3)]), time_ms=T0 + 1)]
    log += [c.encode(c.finished("e1", [c.finished_item(f"j{i}", 1, J.ATTEMPT_END_FAILED) for i in (1, 2, 3)]),
                     time_ms=T0 + 2)]
    log += [c.encode(c.executor_down("e1"), time_ms=T0 + 3)]
    with temp_node() as one, temp_node() as whole:
        for data in log:
            one.append(data)
        whole.replay(log)
        ids = [e.id for e in pending(one)]
        assert ids == [e.id for e in pending(whole)] == ["e7.0", "e7.1", "e7.2", "e8.0"]
        assert [e.SerializeToString() for e in pending(one)] == [e.SerializeToString() for e in pending(whole)]
        assert one.state.fingerprint() == whole.state.fingerprint()


def test_event_id_keys_round_trip_and_bad_ids_name_nothing() -> None:
    assert notify.key_of(notify.event_id(123, 4)) == notify.event_key(123, 4)
    assert notify.event_key(2, 0) < notify.event_key(10, 0) < notify.event_key(10, 1)
    for bad in ("", "e0.0", "e1", "e1.", "e01.0", "x1.0", "e1.0 ", "e1.99999999999", "e" + "9" * 25 + ".0"):
        assert notify.key_of(bad) is None, bad


def test_acknowledgements_take_events_out_once_and_count_them(node: Node) -> None:
    node.run(add())
    node.up()
    first, second = fail_job(node), fail_job(node)
    ids = [e.id for e in pending(node)]
    assert len(ids) == 2 and first != second
    node.run(ack("hook", delivered=[ids[0]], failed=3, error="HTTP 500"))
    node.run(ack("hook", delivered=[ids[0]], expired=[ids[1], "e999.0", "garbage"]))  # repeats are harmless
    node.run(ack("gone", delivered=[ids[0]]))  # a sink removed meanwhile
    [sink] = node.state.notify_sinks()
    assert (sink.queued, sink.delivered, sink.expired, sink.pending, sink.failed_attempts) == (2, 1, 1, 0, 3)
    assert sink.last_error == "HTTP 500" and sink.last_delivered_ms == node.now
    assert pending(node) == []
    assert node.run(ack("hook", delivered=["e1.0"] * (notify.MAX_ACK_IDS + 1))).code == notify.INVALID_ARGUMENT


def test_a_full_outbox_drops_its_oldest_and_counts_them(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "MAX_PENDING", 3)
    node.run(add())
    made = [node.run(commands_pb2.Command(notify_test=commands_pb2.NotifyTestCmd(name="hook"))).event_id
            for _ in range(5)]
    assert [e.id for e in pending(node)] == made[2:]
    [sink] = node.state.notify_sinks()
    assert (sink.queued, sink.dropped, sink.pending) == (5, 2, 3)
    node.reopen()  # the outbox, its order and the counters live in RocksDB
    assert [e.id for e in pending(node)] == made[2:]
    assert node.state.notify_sinks()[0].dropped == 2
    assert node.state.event_counts() == {"test": 5}


def test_test_events_go_to_their_sink_only_and_remove_drops_the_outbox(node: Node) -> None:
    node.run(add("a", events=("job.failed",)))
    node.run(add("b"))
    result = node.run(commands_pb2.Command(notify_test=commands_pb2.NotifyTestCmd(name="a")))
    assert [e.id for e in pending(node, "a")] == [result.event_id] and pending(node, "b") == []
    assert json.loads(pending(node, "a")[0].data_json) == {"sink": "a"}
    assert node.run(commands_pb2.Command(notify_test=commands_pb2.NotifyTestCmd(name="nope"))).code == notify.NOT_FOUND
    node.run(commands_pb2.Command(notify_remove=commands_pb2.NotifyRemoveCmd(name="a")))
    node.reopen()
    assert [s.name for s in node.state.notify_sinks()] == ["b"]
    assert pending(node, "a") == []
    assert list(node.db.cf("sm_outbox").keys()) == []


def test_the_secret_never_leaves_through_public() -> None:
    sink = N.NotifySink(name="a", url="https://h/", secret=b"top")
    shown = notify.public(sink)
    assert shown.secret == b"" and shown.has_secret and sink.secret == b"top"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(st.tuples(st.just("event"), st.integers(1, 4)),
                                st.tuples(st.just("ack"), st.integers(0, 2**16)),
                                st.tuples(st.just("expire"), st.integers(0, 2**16))), max_size=25))
def test_outbox_counters_always_add_up_and_survive_a_restart(steps: list[tuple[str, int]],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """queued = pending + delivered + expired + dropped, pending = what the outbox holds, after any
    mix of events, acknowledgements and expiries, in memory and after a reopen (against a plain
    list as the model of the outbox)."""
    monkeypatch.setattr(notify, "MAX_PENDING", 5)
    with temp_node() as node:
        node.run(add())
        model: list[str] = []
        for kind, n in steps:
            if kind == "event":
                for _ in range(n):
                    model.append(node.run(commands_pb2.Command(
                        notify_test=commands_pb2.NotifyTestCmd(name="hook"))).event_id)
                    del model[: max(0, len(model) - 5)]
            else:
                chosen = [i for bit, i in enumerate(model) if n >> bit & 1]
                node.run(ack("hook", delivered=chosen) if kind == "ack" else ack("hook", expired=chosen))
                model = [i for i in model if i not in chosen]
            sink = node.state.notify_sinks()[0]
            assert [e.id for e in pending(node)] == model
            assert sink.pending == len(model)
            assert sink.queued == sink.pending + sink.delivered + sink.expired + sink.dropped
        before = node.state.fingerprint()
        node.reopen()
        assert [e.id for e in pending(node)] == model and node.state.fingerprint() == before

"""Submit, idempotency, dependencies and their SKIPPED cascade, cancel."""

from __future__ import annotations

from sm_harness import Node

from raftsched.state import commands as c
from raftsched.v1 import jobs_pb2

J = jobs_pb2


def test_submit_assigns_sequential_ids_and_queues(node: Node) -> None:
    result = node.run(c.submit(J.JobSpec(handler="noop"), J.JobSpec(command=["true"])))
    jobs = [r.job for r in result.submitted]
    assert [j.id for j in jobs] == ["j1", "j2"]
    assert [j.seq for j in jobs] == [1, 2]
    assert all(j.state == J.JOB_STATE_QUEUED and j.submitted_ms == node.now for j in jobs)
    assert node.state.counters()["jobs_queued"] == 2


def test_idempotency_key_returns_the_existing_job(node: Node) -> None:
    first = node.submit(idempotency_key="k1", name="first")
    again = node.run(c.submit(J.JobSpec(handler="echo", idempotency_key="k1", name="second")))
    assert again.submitted[0].existed
    assert again.submitted[0].job.id == first.id
    assert again.submitted[0].job.spec.name == "first"
    assert node.state.counters()["jobs_total"] == 1
    same_batch = node.run(c.submit(J.JobSpec(handler="noop", idempotency_key="k2"),
                                   J.JobSpec(handler="noop", idempotency_key="k2")))
    assert [r.existed for r in same_batch.submitted] == [False, True]
    assert node.state.job_by_key("k2") == same_batch.submitted[0].job


def test_invalid_spec_is_refused_alone_with_invalid_argument(node: Node) -> None:
    result = node.run(c.submit(J.JobSpec(handler="noop", command=["x"]), J.JobSpec(handler="noop")))
    bad, good = result.submitted
    assert bad.code == 3 and bad.error.startswith("handler:") and not bad.HasField("job")
    assert good.job.id == "j1"  # the refused spec consumed no id
    assert node.state.counters()["refused_items"] == 1


def test_unknown_dependency_is_refused(node: Node) -> None:
    result = node.run(c.submit(J.JobSpec(handler="noop", depends_on=["j9"])))
    assert result.submitted[0].code == 3
    assert "depends_on" in result.submitted[0].error
    assert node.state.counters()["jobs_total"] == 0


def test_dependents_wait_then_queue_when_all_dependencies_succeed(node: Node) -> None:
    node.up()
    a, b = node.submit(), node.submit()
    d = node.submit(depends_on=[a.id, b.id])
    assert d.state == J.JOB_STATE_PENDING
    for job in (a, b):
        node.assign(job.id)
        node.finish(job.id, 1, J.ATTEMPT_END_SUCCEEDED)
        expected = J.JOB_STATE_QUEUED if job is b else J.JOB_STATE_PENDING
        assert node.job(d.id).state == expected
    assert node.submit(depends_on=[a.id]).state == J.JOB_STATE_QUEUED  # already satisfied


def test_failed_dependency_skips_dependents_transitively(node: Node) -> None:
    node.up()
    a = node.submit(max_attempts=1)
    b = node.submit(depends_on=[a.id])
    d = node.submit(depends_on=[b.id])
    node.assign(a.id)
    node.finish(a.id, 1, J.ATTEMPT_END_FAILED, error="boom")
    assert node.job(a.id).state == J.JOB_STATE_FAILED
    assert node.job(b.id).state == J.JOB_STATE_SKIPPED
    assert node.job(b.id).state_reason == f"dependency {a.id} FAILED"
    assert node.job(d.id).state == J.JOB_STATE_SKIPPED
    assert node.job(d.id).state_reason == f"dependency {b.id} SKIPPED"
    late = node.submit(depends_on=[b.id])  # a dependency already not succeeded: SKIPPED at once
    assert late.state == J.JOB_STATE_SKIPPED


def test_cancel_queued_job_skips_dependents(node: Node) -> None:
    a = node.submit()
    b = node.submit(depends_on=[a.id])
    result = node.run(c.cancel(a.id, "operator"))
    assert result.job.state == J.JOB_STATE_CANCELLED
    assert result.job.state_reason == "operator"
    assert node.job(b.id).state == J.JOB_STATE_SKIPPED
    assert node.state.queued(node.now, 10) == []


def test_cancel_running_job_ends_its_attempt_and_names_the_executor(node: Node) -> None:
    node.up()
    a = node.submit()
    node.assign(a.id)
    node.start(a.id, 1)
    result = node.run(c.cancel(a.id))
    assert result.job.state == J.JOB_STATE_CANCELLED
    attempt = result.job.attempts[-1]
    assert (attempt.number, attempt.executor, attempt.end) == (1, "e1", J.ATTEMPT_END_CANCELLED)
    assert node.state.attempts_on("e1") == []
    # The executor then reports the killed task: expected, recorded, not stale.
    node.finish(a.id, 1, J.ATTEMPT_END_CANCELLED, exit_code=-15, output_tail=b"bye")
    job = node.job(a.id)
    assert job.state == J.JOB_STATE_CANCELLED and job.stale_results_refused == 0
    assert job.attempts[-1].output_tail == b"bye"
    assert node.state.counters()["stale_results_refused"] == 0


def test_cancel_terminal_is_unchanged_and_unknown_is_not_found(node: Node) -> None:
    a = node.submit()
    node.run(c.cancel(a.id))
    before = node.job(a.id)
    again = node.run(c.cancel(a.id, "twice"))
    assert again.job == before and not again.error
    missing = node.run(c.cancel("j99"))
    assert missing.code == 5 and "j99" in missing.error
    assert node.state.counters()["refused_commands"] == 1


def test_list_jobs_pages_in_submit_order_and_filters_by_state(node: Node) -> None:
    ids = [node.submit().id for _ in range(7)]
    node.run(c.cancel(ids[2]))
    node.run(c.cancel(ids[5]))
    seen: list[str] = []
    token = ""
    while True:
        page, token = node.list_jobs(page_size=3, page_token=token)
        seen.extend(j.id for j in page)
        if not token:
            break
    assert seen == ids
    cancelled, token = node.list_jobs(state=J.JOB_STATE_CANCELLED, page_size=1)
    assert [j.id for j in cancelled] == [ids[2]] and token
    rest, token = node.list_jobs(state=J.JOB_STATE_CANCELLED, page_size=1, page_token=token)
    assert [j.id for j in rest] == [ids[5]] and token == ""


def test_queries_return_copies(node: Node) -> None:
    a = node.submit()
    job = node.job(a.id)
    job.state = J.JOB_STATE_FAILED
    assert node.job(a.id).state == J.JOB_STATE_QUEUED


def test_priority_then_submit_order(node: Node) -> None:
    low = node.submit(priority=-5)
    first = node.submit()
    high = node.submit(priority=10)
    second = node.submit()
    assert [j.id for j in node.state.queued(node.now, 10)] == [high.id, first.id, second.id, low.id]
    assert [j.id for j in node.state.queued(node.now, 2)] == [high.id, first.id]

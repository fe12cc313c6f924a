"""The console's pure parts: words, forms, sessions and CSRF, page walks, sampler rates, config,
and the Host check and headers (the ASGI middleware called directly, no cluster)."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

import pytest
from starlette.responses import PlainTextResponse

from raftsched.client.aio import AsyncClient
from raftsched.config import ConfigError
from raftsched.console import fmt, queries, words
from raftsched.console.config import load_console_config
from raftsched.console.forms import FormError, job_filters, job_spec
from raftsched.console.guard import Guard, host_name
from raftsched.console.render import make_environment
from raftsched.console.sampler import Sample, Sampler
from raftsched.console.sessions import Sessions, SignInError, may
from raftsched.security.tokens import TokenTable
from raftsched.v1 import admin_pb2, jobs_pb2, scheduler_pb2

J = jobs_pb2


# --- words -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "text"), [
    (scheduler_pb2.ScheduleSpec(cron="0 2 * * *", timezone="Europe/Berlin"), "every day at 02:00 (Europe/Berlin)"),
    (scheduler_pb2.ScheduleSpec(cron="0 30 2 * * *"), "every day at 02:30 (UTC)"),
    (scheduler_pb2.ScheduleSpec(cron="0 9 * * 1-5"), "at 09:00 on Monday through Friday (UTC)"),
    (scheduler_pb2.ScheduleSpec(every_ms=10_000), "every 10 seconds"),
    (scheduler_pb2.ScheduleSpec(every_ms=60_000), "every minute"),
    (scheduler_pb2.ScheduleSpec(every_ms=5_400_000), "every 1 hour 30 minutes"),
])
def test_schedules_in_words(spec: scheduler_pb2.ScheduleSpec, text: str) -> None:
    assert words.when_words(spec) == text


def test_durations_in_words() -> None:
    assert words.duration_words(250) == "250 ms"
    assert words.duration_words(1000) == "1 second"
    assert words.duration_words(90_061_000) == "1 day 1 hour"


# --- forms -------------------------------------------------------------------------------------


def test_submit_form_makes_a_spec() -> None:
    spec = job_spec({"name": "n", "command": "sh -c 'echo hi there'", "payload": "p", "max_attempts": "2",
                     "timeout": "1m", "priority": "-5", "labels": "zone=a,gpu=1", "depends_on": "j1, j2",
                     "slots": "2"})
    assert list(spec.command) == ["sh", "-c", "echo hi there"] and spec.payload == b"p"
    assert (spec.max_attempts, spec.timeout_ms, spec.priority, spec.slots) == (2, 60_000, -5, 2)
    assert dict(spec.labels) == {"zone": "a", "gpu": "1"} and list(spec.depends_on) == ["j1", "j2"]


@pytest.mark.parametrize(("form", "field"), [
    ({}, "handler"),
    ({"handler": "noop", "command": "true"}, "handler"),
    ({"handler": "noop", "max_attempts": "many"}, "max_attempts"),
    ({"handler": "noop", "priority": "5000"}, "priority"),
    ({"handler": "noop", "timeout": "soon"}, "timeout"),
    ({"handler": "noop", "labels": "novalue"}, "labels"),
    ({"command": "sh -c 'unclosed"}, "command"),
    ({"handler": "noop", "name": "x" * 201}, "name"),
])
def test_submit_form_names_the_bad_field(form: Mapping[str, str], field: str) -> None:
    with pytest.raises(FormError) as caught:
        job_spec(form)
    assert caught.value.field == field


def test_job_filters() -> None:
    f = job_filters({"state": "running", "label": "zone=a", "name": "x", "page": "42", "schedule": "s"})
    assert f.state_value == J.JOB_STATE_RUNNING and f.labels == {"zone": "a"} and f.any
    assert f.query(page="") == "state=RUNNING&schedule=s&label=zone%3Da&name=x"
    with pytest.raises(FormError):
        job_filters({"state": "sleepy"})


# --- sessions, CSRF and roles -------------------------------------------------------------------


def tokens() -> TokenTable:
    return TokenTable.parse({"tokens": {"reader-token-0123456789": "reader", "executor-token-012345678": "executor"}})


def test_insecure_mode_everyone_is_admin_with_a_csrf_token_per_session() -> None:
    sessions = Sessions(tokens=None)
    a, b = sessions.visit(None), sessions.visit(None)
    assert a.new and a.role == "admin" and a.sid != b.sid
    assert sessions.check_csrf(a.sid, a.csrf) and not sessions.check_csrf(a.sid, b.csrf)
    assert not sessions.check_csrf(a.sid, None) and not sessions.check_csrf(None, a.csrf)
    assert sessions.visit(a.sid).csrf == a.csrf and not sessions.visit(a.sid).new


def test_sign_in_gives_a_new_session_with_the_token_role() -> None:
    now = [0.0]
    sessions = Sessions(tokens=tokens(), clock=lambda: now[0])
    anonymous = sessions.visit(None)
    assert not anonymous.signed_in
    visitor = sessions.sign_in("reader-token-0123456789")
    assert visitor.role == "reader" and visitor.sid != anonymous.sid and visitor.name.startswith("token:")
    assert "reader-token" not in visitor.name
    assert sessions.visit(visitor.sid).role == "reader"
    with pytest.raises(SignInError):
        sessions.sign_in("executor-token-012345678")
    with pytest.raises(SignInError):
        sessions.sign_in("nope")
    now[0] += 9 * 3600  # idle past the limit
    assert not sessions.visit(visitor.sid).signed_in


def test_actions_follow_the_cluster_role_table() -> None:
    assert may("admin", "transfer") and may("admin", "drain")
    assert may("submitter", "cancel") and not may("submitter", "drain") and not may("submitter", "transfer")
    assert not any(may("reader", a) for a in ("submit", "cancel", "pause", "resume", "trigger", "drain"))
    assert not may(None, "submit")


# --- queries ------------------------------------------------------------------------------------


class FakeJobs:
    """list_jobs over seqs 1..n newest first, looking at `scan` jobs per call (short pages)."""

    def __init__(self, jobs: list[jobs_pb2.Job], scan: int) -> None:
        self.jobs, self.scan, self.calls = jobs, scan, 0

    async def list_jobs(self, state: int = 0, schedule: str = "", page_size: int = 0, page_token: str = "",
                        stale: bool = False, *, where: Any = None, timeout: float | None = None,
                        ) -> scheduler_pb2.ListJobsResponse:
        self.calls += 1
        ordered = sorted(self.jobs, key=lambda j: -j.seq if where.newest_first else j.seq)
        start = int(page_token) if page_token else 0
        window = ordered[start:start + self.scan]
        matched = [j for j in window if (not where.name or where.name in j.spec.name)
                   and j.submitted_ms >= where.created_after_ms][:page_size]
        looked = start + (ordered[start:].index(matched[-1]) + 1 if len(matched) == page_size else len(window))
        return scheduler_pb2.ListJobsResponse(jobs=matched, next_page_token=str(looked) if looked < len(ordered)
                                              else "")


def make_jobs(n: int) -> list[jobs_pb2.Job]:
    return [J.Job(id=f"j{i}", seq=i, submitted_ms=i, spec=J.JobSpec(name="rare" if i % 50 == 0 else "common",
                                                                       depends_on=["j10"] if i in (11, 70) else []))
            for i in range(1, 201)][:n]


async def test_a_page_follows_short_pages_until_full() -> None:
    fake = FakeJobs(make_jobs(200), scan=30)
    page = await queries.job_page(cast(AsyncClient, fake), job_filters({"name": "rare"}), size=3)
    assert [j.id for j in page.jobs] == ["j200", "j150", "j100"] and page.next_token and not page.cut_short
    assert fake.calls > 1


async def test_a_page_stops_at_its_budget_and_says_so() -> None:
    fake = FakeJobs(make_jobs(200), scan=30)
    ticks = iter(range(100))
    page = await queries.job_page(cast(AsyncClient, fake), job_filters({"name": "rare"}), size=3, budget_s=1.5,
                                  clock=lambda: float(next(ticks)))
    assert page.cut_short and len(page.jobs) < 3 and page.next_token


async def test_dependents_are_found_among_later_jobs() -> None:
    jobs = make_jobs(200)
    found = await queries.dependents(cast(AsyncClient, FakeJobs(jobs, scan=1000)), jobs[9])
    assert [j.id for j in found.jobs] == ["j11", "j70"] and found.complete and found.looked_at == 190
    partial = await queries.dependents(cast(AsyncClient, FakeJobs(jobs, scan=1000)), jobs[9], look_at=20)
    assert [j.id for j in partial.jobs] == ["j11"] and not partial.complete


# --- sampler ------------------------------------------------------------------------------------


def status(leader: str, term: int, finished: int) -> admin_pb2.StatusResponse:
    nodes = [admin_pb2.NodeStatus(id=n, term=term, applied_index=5,
                                  role=admin_pb2.ROLE_LEADER if n == leader else admin_pb2.ROLE_FOLLOWER,
                                  job_counts={"SUCCEEDED": finished, "QUEUED": 1})
             for n in ("n1", "n2", "n3")]
    return admin_pb2.StatusResponse(nodes=nodes)


def test_sampler_notes_leader_changes_and_rates() -> None:
    sampler = Sampler(cast(AsyncClient, None))
    sampler.observe(Sample(0.0, 1000, status("n1", 1, 0), submitted=10, finished=0))
    sampler.observe(Sample(1.0, 2000, status("n1", 1, 4), submitted=20, finished=4))
    sampler.observe(Sample(2.0, 3000, None, error="UNAVAILABLE: no"))  # unknown: no change noted
    sampler.observe(Sample(3.0, 4000, status("", 2, 4), submitted=20, finished=4))
    sampler.observe(Sample(4.0, 5000, status("n2", 2, 2), submitted=30, finished=2))  # history purged
    assert [(c.leader, c.previous) for c in sampler.changes] == [("n2", ""), ("", "n1"), ("n1", None)]
    sampler.observe(Sample(4.5, 5500, status("n2", 3, 2), submitted=30, finished=2))  # re-elected
    assert (sampler.changes[0].leader, sampler.changes[0].previous, sampler.changes[0].term) == ("n2", "n2", 3)
    rates = sampler.rates(10)
    assert rates is not None and rates.submitted_per_s == 20 / 4.5 and rates.finished_per_s == 2 / 4.5
    last = sampler.rates(1)
    assert last is not None and last.finished_per_s == 0.0  # fell (purged), counted as none


# --- formatting and templates --------------------------------------------------------------------


def test_timeline_places_attempts_in_the_jobs_span() -> None:
    job = J.Job(submitted_ms=0, updated_ms=1000, state=J.JOB_STATE_SUCCEEDED, attempts=[
        J.Attempt(number=1, assigned_ms=100, started_ms=200, finished_ms=500, end=J.ATTEMPT_END_FAILED),
        J.Attempt(number=2, assigned_ms=600, started_ms=700, finished_ms=1000, end=J.ATTEMPT_END_SUCCEEDED)])
    first, second = fmt.timeline(job, now=5000)
    assert (first.wait_x, first.run_x, first.run_w, first.end) == (10.0, 20.0, 30.0, "failed")
    assert (second.run_x, second.run_w, second.end) == (70.0, 30.0, "succeeded")


def test_templates_escape_user_data() -> None:
    evil = "<img src=x onerror=alert(1)>"
    job = J.Job(id="j1", spec=J.JobSpec(name=evil, handler="noop"), state=J.JOB_STATE_FAILED, attempts=[
        J.Attempt(number=1, executor=evil, output_tail=evil.encode(), error=evil, end=J.ATTEMPT_END_FAILED)])
    html = make_environment().get_template("_job_live.html").render(job=job, now=0)
    assert evil not in html and html.count("&lt;img src=x onerror=alert(1)&gt;") == 3


# --- config and the guard -----------------------------------------------------------------------


def test_config_refuses_beyond_loopback_without_tls() -> None:
    with pytest.raises(ConfigError, match=r"--insecure.*docs/security\.md"):
        load_console_config({"listen": "0.0.0.0:8080"}, env={})
    config = load_console_config({"listen": "0.0.0.0:8080", "insecure": "true"}, env={})
    assert config.insecure and not config.loopback
    assert load_console_config({}, env={"RAFTSCHED_LISTEN": "[::1]:9000"}).loopback
    with pytest.raises(ConfigError, match="tokens_file needs TLS"):
        load_console_config({"tokens_file": "x"}, env={})
    with pytest.raises(ConfigError, match="together"):
        load_console_config({"https_cert": "x"}, env={})


async def call(app: Guard, host: str, method: str = "GET", length: str | None = None,
               ) -> tuple[int, dict[str, str]]:
    """One request through the middleware, as the ASGI server would make it."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"host", host.encode())] + ([(b"content-length", length.encode())] if length is not None else [])
    scope = {"type": "http", "method": method, "path": "/", "headers": headers}
    await app(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


async def test_guard_checks_the_host_and_adds_security_headers() -> None:
    async def hello(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("hi")(scope, receive, send)

    guard = Guard(hello, loopback_hosts_only=True)
    status, headers = await call(guard, "127.0.0.1:8080")
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert (await call(guard, "localhost:8080"))[0] == 200
    assert (await call(guard, "[::1]:8080"))[0] == 200
    assert (await call(guard, "rebound.example:8080"))[0] == 421
    assert (await call(Guard(hello, loopback_hosts_only=False), "console.example"))[0] == 200
    assert (await call(guard, "127.0.0.1:8080", "POST", "120"))[0] == 200
    assert (await call(guard, "127.0.0.1:8080", "POST"))[0] == 413  # no length given
    assert (await call(guard, "127.0.0.1:8080", "POST", str(2 << 20)))[0] == 413
    assert host_name("[::1]:8080") == "::1" and host_name("localhost") == "localhost"


def test_a_quarantined_executor_shows_why_the_time_left_and_a_release_button() -> None:
    executor = J.ExecutorInfo(id="e1", state=J.EXECUTOR_STATE_QUARANTINED, slots=4, free_slots=4,
                              quarantined_until_ms=90_000, state_reason="5 attempts in a row failed on it")
    html = make_environment().get_template("_executors_table.html").render(
        executors=[executor], now=30_000, can={"drain": True, "release": True},
        visitor=SimpleNamespace(role="admin", csrf="t"), ago=lambda _ms, _now: "-")
    assert "5 attempts in a row failed on it; 1m00s left" in html
    assert 'action="/executors/e1/release"' in html and 'data-action="release"' in html
    assert may("admin", "release") and not may("submitter", "release")

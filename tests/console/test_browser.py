"""The console in a real browser (headless Firefox ESR) in front of a real cluster.

The tests share one cluster, console and browser, and run in this file's order: the last two
break things on purpose (an executor, then the leader, are killed). Each page they visit is saved
as a screenshot under store/console-screenshots/ (or $RAFTSCHED_SCREENSHOTS).
"""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest
from integration.cluster import state_name

from raftsched.v1 import jobs_pb2, scheduler_pb2

from .conftest import Stack
from .harness import Browser, wait_until

pytestmark = [pytest.mark.integration]

EVIL = "<img src=x onerror=alert(1)>"
J = jobs_pb2


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def no_alert(browser: Browser) -> None:
    """Marionette raises UnexpectedAlertOpen on the next command while an alert is open."""
    assert browser.js("return 1;") == 1


def test_every_page_loads(stack: Stack, browser: Browser) -> None:
    c = stack.cluster
    parent = c.submit(name="page-tour", handler="echo", payload=b"hello from the tour")
    child = c.submit(name="page-tour-child", handler="noop", depends_on=[parent.id])
    c.client().create_schedule(scheduler_pb2.ScheduleSpec(
        name="tour-nightly", cron="0 2 * * *", timezone="Europe/Berlin", template=J.JobSpec(handler="noop")))
    c.wait_state(child.id, J.JOB_STATE_SUCCEEDED)
    pages = {
        "cluster": ("/", ["n1", "n2", "n3", "Jobs by state", "Leader changes"]),
        "jobs": ("/jobs", [parent.id, child.id, "page-tour-child"]),
        "job": (f"/jobs/{parent.id}", ["SUCCEEDED", "hello from the tour", f"{parent.id}:1", "page-tour"]),
        "job-dependents": (f"/jobs/{parent.id}/dependents", [child.id]),
        "executors": ("/executors", ["e1", "e2", "CONNECTED", "pool=spare"]),
        "schedules": ("/schedules", ["tour-nightly", "every day at 02:00 (Europe/Berlin)"]),
        "schedule": ("/schedules/tour-nightly", ["every day at 02:00 (Europe/Berlin)", "Next fire times"]),
    }
    for name, (path, wanted) in pages.items():
        browser.go(stack.url + path)
        wait_until(lambda w=wanted: all(x in browser.text() for x in w), 10, f"{path} shows {wanted}")
        no_alert(browser)
        browser.screenshot(name)
    # the dependents, found by the page's script once it loaded
    browser.go(f"{stack.url}/jobs/{parent.id}")
    wait_until(lambda: child.id in browser.text("section:last-of-type"), 10, "the job page lists its dependent")


def test_job_name_is_shown_as_text_and_runs_no_script(stack: Stack, browser: Browser) -> None:
    job = stack.cluster.submit(name=EVIL, handler="noop")
    with urllib.request.urlopen(f"{stack.url}/jobs/{job.id}", timeout=10) as r:
        html = r.read().decode()
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    for path in (f"/jobs/{job.id}", "/jobs", f"/jobs?name={urllib.request.quote('<img')}"):
        browser.go(stack.url + path)
        wait_until(lambda: EVIL in browser.text(), 10, f"{path} shows the name as text")
        no_alert(browser)
        assert browser.js("return document.querySelectorAll('main img').length;") == 0
    browser.screenshot("job-escaped-name")


def test_submit_a_job_and_see_it_succeed_without_reloading(stack: Stack, browser: Browser) -> None:
    name = unique("from-the-form")
    browser.go(stack.url + "/jobs")
    browser.js("document.querySelector('details.submit').open = true;")
    browser.fill("#submit-form input[name=name]", name)
    browser.fill("#submit-form input[name=handler]", "sleep")
    browser.fill("#submit-form textarea[name=payload]", "1500")
    browser.click("#submit-form button[type=submit]")
    wait_until(lambda: "/jobs/" in browser.url() and "ok=submitted" in browser.url(), 10, "the new job's page")
    job_id = browser.url().split("/jobs/")[1].split("?")[0]
    assert name in browser.text("#job-name")
    browser.mark()
    first = browser.text("#job-live")
    assert "SUCCEEDED" not in first, first
    wait_until(lambda: "SUCCEEDED" in browser.text("#job-live"), 15, "the job page turns SUCCEEDED by itself")
    assert browser.marked(), "the page was reloaded"
    assert state_name(stack.cluster.get(job_id)) == "SUCCEEDED"
    assert browser.js("return document.querySelector('[data-hide-when-final]').hidden;") is True
    browser.screenshot("job-succeeded-live")


def test_cancel_a_running_job(stack: Stack, browser: Browser) -> None:
    c = stack.cluster
    job = c.submit(name=unique("long-sleep"), handler="sleep", payload=b"60000")
    c.wait_state(job.id, J.JOB_STATE_RUNNING, timeout=15)
    browser.go(f"{stack.url}/jobs/{job.id}")
    wait_until(lambda: "RUNNING" in browser.text("#job-live"), 10, "the page shows RUNNING")
    browser.click("button[data-action=cancel]")
    wait_until(lambda: "ok=cancelled" in browser.url(), 10, "back on the job page after cancelling")
    wait_until(lambda: "CANCELLED" in browser.text("#job-live"), 10, "the page shows CANCELLED")
    assert "Cancel requested." in browser.text()
    assert state_name(c.get(job.id)) == "CANCELLED"
    assert "web console" in c.get(job.id).state_reason


def test_a_state_change_is_on_screen_within_a_second(stack: Stack, browser: Browser) -> None:
    c = stack.cluster
    job = c.submit(name=unique("watched"), handler="sleep", payload=b"60000")
    c.wait_state(job.id, J.JOB_STATE_RUNNING, timeout=15)
    browser.go(f"{stack.url}/jobs/{job.id}")
    wait_until(lambda: "RUNNING" in browser.text("#job-live"), 10, "the page shows RUNNING")
    c.client().cancel_job(job.id, "cancelled behind the page's back")
    changed = time.monotonic()  # the cancel is applied (committed) when the call returns
    wait_until(lambda: "CANCELLED" in browser.text("#job-live"), 5, "the page shows CANCELLED", interval=0.02)
    elapsed = time.monotonic() - changed
    print(f"on screen {elapsed:.3f} s after the change")
    assert elapsed < 1.0, f"the page showed the change {elapsed:.2f} s after it"
    assert "cancelled behind the page's back" in browser.text("#job-live")


def test_pause_and_resume_a_schedule(stack: Stack, browser: Browser) -> None:
    c = stack.cluster
    name = unique("hourly")
    c.client().create_schedule(scheduler_pb2.ScheduleSpec(name=name, every_ms=3_600_000,
                                                          template=J.JobSpec(handler="noop")))
    browser.go(f"{stack.url}/schedules/{name}")
    assert "every hour" in browser.text("#schedule-words")
    browser.fill("input[name=note]", "maintenance window")
    browser.click("button[data-action=pause]")
    wait_until(lambda: "ok=paused" in browser.url(), 10, "back on the schedule page after pausing")
    assert "PAUSED" in browser.text() and "maintenance window" in browser.text()
    assert c.client().get_schedule(name).paused
    browser.screenshot("schedule-paused")
    browser.click("button[data-action=resume]")
    wait_until(lambda: "ok=resumed" in browser.url(), 10, "back on the schedule page after resuming")
    assert "ACTIVE" in browser.text()
    assert not c.client().get_schedule(name).paused


def executor_state(browser: Browser, eid: str) -> str:
    return browser.text(f"tr[data-executor={eid}] td:nth-child(2)").strip()


def test_killed_executor_turns_disconnected_then_down(stack: Stack, browser: Browser) -> None:
    browser.go(stack.url + "/executors")
    wait_until(lambda: executor_state(browser, "e2") == "CONNECTED", 10, "e2 shows CONNECTED")
    browser.mark()
    stack.cluster.kill_executor("e2")
    wait_until(lambda: executor_state(browser, "e2") == "DISCONNECTED", 10, "e2 shows DISCONNECTED")
    browser.screenshot("executor-disconnected")
    wait_until(lambda: executor_state(browser, "e2") == "DOWN", 20, "e2 shows DOWN")
    assert browser.marked(), "the page was reloaded"
    assert executor_state(browser, "e1") in ("CONNECTED", "DISCONNECTED")  # alive; a slow heartbeat may show


def test_drain_an_executor(stack: Stack, browser: Browser) -> None:
    browser.go(stack.url + "/executors")
    browser.click("tr[data-executor=e1] button[data-action=drain]")
    wait_until(lambda: "ok=drained" in browser.url(), 10, "back on the executors page after draining")
    wait_until(lambda: executor_state(browser, "e1") == "DRAINING", 10, "e1 shows DRAINING")
    assert {e.id: e.state for e in stack.cluster.client().list_executors().executors}["e1"] == \
        J.EXECUTOR_STATE_DRAINING


def test_killed_leader_is_replaced_on_the_cluster_page(stack: Stack, browser: Browser) -> None:
    c = stack.cluster
    old = c.wait_leader()
    browser.go(stack.url + "/")
    wait_until(lambda: browser.text("#leader") == old, 10, f"the cluster page names {old} as leader")
    browser.mark()
    c.kill(old)
    new = wait_until(lambda: (t := browser.text("#leader")) not in ("", old, "none") and t, 20,
                     "the cluster page names a new leader")
    assert new in c.ids and new != old
    wait_until(lambda: "down" in browser.text(f"tr[data-node={old}]"), 10, f"{old} shows as down")
    changes = browser.text("table.changes")
    assert new in changes and old in changes
    assert browser.marked(), "the page was reloaded"
    browser.screenshot("cluster-after-failover")

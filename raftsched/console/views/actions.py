"""The console's actions, one POST form each. Every one passes `action_form` first (origin, CSRF
token, session, the role's right to the RPC), then calls the cluster as the visitor (with their
token, so the cluster checks the role again), then redirects (303) to a page that shows the result.

A refusal or a cluster error is an error page with the reason (see `app.error_page`).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..context import Refused, action_form, console_of, safe_next
from ..forms import FormError, job_spec
from ..sessions import Visitor

MAX_NOTE = 200


def _done(target: str, code: str) -> Response:
    return RedirectResponse(f"{target}{'&' if '?' in target else '?'}ok={code}", status_code=303)


def _reason(visitor: Visitor, what: str) -> str:
    return f"{what} from the web console" + (f" by {visitor.name}" if visitor.name else "")


async def submit_job(request: Request) -> Response:
    visitor, form = await action_form(request, "submit")
    try:
        spec = job_spec(form)
    except FormError as e:
        raise Refused(400, f"cannot submit: {e}") from None
    response = await console_of(request).client(visitor).submit_job(spec)
    return _done(f"/jobs/{quote(response.job.id, safe='')}", "submitted")


async def cancel_job(request: Request) -> Response:
    visitor, form = await action_form(request, "cancel")
    job_id = request.path_params["job_id"]
    await console_of(request).client(visitor).cancel_job(job_id, _reason(visitor, "cancelled"))
    return _done(safe_next(form.get("next"), f"/jobs/{quote(job_id, safe='')}"), "cancelled")


async def pause_schedule(request: Request) -> Response:
    visitor, form = await action_form(request, "pause")
    name = request.path_params["name"]
    note = (form.get("note") or "").strip()[:MAX_NOTE] or _reason(visitor, "paused")
    await console_of(request).client(visitor).pause_schedule(name, note)
    return _done(f"/schedules/{quote(name, safe='')}", "paused")


async def resume_schedule(request: Request) -> Response:
    visitor, _ = await action_form(request, "resume")
    name = request.path_params["name"]
    await console_of(request).client(visitor).resume_schedule(name)
    return _done(f"/schedules/{quote(name, safe='')}", "resumed")


async def trigger_schedule(request: Request) -> Response:
    visitor, _ = await action_form(request, "trigger")
    job = await console_of(request).client(visitor).trigger_schedule(request.path_params["name"])
    return _done(f"/jobs/{quote(job.id, safe='')}", "triggered")


async def drain_executor(request: Request) -> Response:
    visitor, _ = await action_form(request, "drain")
    await console_of(request).client(visitor).drain_executor(request.path_params["executor_id"])
    return _done("/executors", "drained")


async def release_executor(request: Request) -> Response:
    visitor, _ = await action_form(request, "release")
    await console_of(request).client(visitor).release_executor(request.path_params["executor_id"])
    return _done("/executors", "released")


async def transfer_leader(request: Request) -> Response:
    visitor, form = await action_form(request, "transfer")
    await console_of(request).client(visitor).transfer_leader((form.get("target") or "").strip()[:64])
    return _done("/", "transferred")

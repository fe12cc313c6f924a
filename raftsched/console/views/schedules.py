"""`/schedules` and `/schedules/{name}`: each schedule in words, its next and last fire times,
the times it skipped and why, and the jobs it made (newest first, one page)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from raftsched.client.calls import JobFilter

from ..context import console_of, visitor_of
from ..render import wants_partial
from . import flash

JOBS_SHOWN = 20


async def schedules_page(request: Request) -> Response:
    console = console_of(request)
    visitor = visitor_of(request)
    response = await console.client(visitor).list_schedules(stale=wants_partial(request))
    schedules = sorted(response.schedules, key=lambda s: s.spec.name)
    return console.renderer.page(request, visitor, "schedules.html", {"schedules": schedules},
                                 partial="_schedules_table.html")


async def schedule_page(request: Request) -> Response:
    console = console_of(request)
    visitor = visitor_of(request)
    name = request.path_params["name"]
    client = console.client(visitor)
    stale = wants_partial(request)
    schedule, made = await asyncio.gather(
        client.get_schedule(name, stale),
        client.list_jobs(schedule=name, page_size=JOBS_SHOWN, stale=stale, where=JobFilter(newest_first=True)))
    context = {"schedule": schedule, "spec": schedule.spec, "jobs": list(made.jobs),
               "more_jobs": bool(made.next_page_token), "flash": flash(request.query_params.get("ok"))}
    return console.renderer.page(request, visitor, "schedule.html", context, partial="_schedule_live.html")

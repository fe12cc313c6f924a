"""`/jobs` (filters, pages by token, newest first), `/jobs/{id}` and its dependents."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from raftsched.jobstates import TERMINAL

from .. import queries
from ..context import console_of, visitor_of
from ..forms import FormError, JobFilters, job_filters
from ..render import wants_partial
from . import flash


async def jobs_page(request: Request) -> Response:
    console = console_of(request)
    visitor = visitor_of(request)
    status, error = 200, ""
    try:
        filters = job_filters(request.query_params)
    except FormError as e:
        filters, status, error = JobFilters(), 400, str(e)
    page = await queries.job_page(console.client(visitor), filters, stale=wants_partial(request))
    context = {"filters": filters, "page": page, "error": error, "flash": flash(request.query_params.get("ok"))}
    return console.renderer.page(request, visitor, "jobs.html", context, partial="_jobs_table.html",
                                 status=status)


async def job_page(request: Request) -> Response:
    console = console_of(request)
    visitor = visitor_of(request)
    client = console.client(visitor)
    job = await client.get_job(request.path_params["job_id"], stale=wants_partial(request))
    context = {"job": job, "final": job.state in TERMINAL, "flash": flash(request.query_params.get("ok"))}
    if not wants_partial(request):
        context["deps"] = await queries.dependencies(client, job)
    return console.renderer.page(request, visitor, "job.html", context, partial="_job_live.html")


async def dependents_page(request: Request) -> Response:
    console = console_of(request)
    visitor = visitor_of(request)
    client = console.client(visitor)
    job = await client.get_job(request.path_params["job_id"])
    found = await queries.dependents(client, job)
    return console.renderer.page(request, visitor, "dependents.html", {"job": job, "found": found},
                                 partial="_dependents.html")

"""`/executors`: state, lease left, slots used and free, labels, running attempts, last seen."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import console_of, visitor_of
from ..render import wants_partial
from . import flash


async def executors_page(request: Request) -> Response:
    console = console_of(request)
    visitor = visitor_of(request)
    response = await console.client(visitor).list_executors(stale=wants_partial(request))
    context = {"executors": list(response.executors), "flash": flash(request.query_params.get("ok"))}
    return console.renderer.page(request, visitor, "executors.html", context, partial="_executors_table.html")

"""Templates (Jinja2, autoescape on for every template) and the answers made from them.

A page with a live region renders it from its own partial template; `?partial=1` answers with that
region alone, which is what the page's script fetches to refresh it (and what the job page's
event stream sends). Every answer is `Cache-Control: no-store`: pages show live cluster state and
carry a CSRF token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from raftsched.clock import now_ms
from raftsched.jobstates import TERMINAL
from raftsched.v1 import admin_pb2

from . import fmt, words
from .sessions import COOKIE, CSRF_FIELD, Visitor

PARTIAL = "partial"
FILTERS = {
    "when": fmt.when, "iso": fmt.iso, "span": fmt.span, "job_state": fmt.job_state,
    "executor_state": fmt.executor_state, "role": fmt.role, "attempt_end": fmt.attempt_end, "css": fmt.css,
    "text": fmt.text, "payload": fmt.payload, "runs": fmt.runs, "labels": fmt.labels,
    "duration": words.duration_words, "when_in": fmt.when_in,
}


def make_environment() -> Environment:
    env = Environment(loader=PackageLoader("raftsched.console", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    env.globals.update(ago=fmt.ago, sparkline=fmt.sparkline, timeline=fmt.timeline, CSRF_FIELD=CSRF_FIELD,
                       when_words=words.when_words, catchup_words=words.catchup_words,
                       overlap_words=words.OVERLAP_WORDS, JOB_STATES=fmt.JOB_STATES, TERMINAL=TERMINAL,
                       LEADER=admin_pb2.ROLE_LEADER)
    return env


def wants_partial(request: Request) -> bool:
    return request.query_params.get(PARTIAL) == "1"


class Renderer:
    """Renders pages with what every page shows: the visitor, the mode banner, the time."""

    def __init__(self, *, site: Mapping[str, Any], secure_cookie: bool) -> None:
        self.env = make_environment()
        self.site = dict(site)  # auth on/off, insecure banner text, the console's version
        self.secure_cookie = secure_cookie

    def html(self, template: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(template).render(context)

    def page(self, request: Request, visitor: Visitor, template: str, context: Mapping[str, Any], *,
             partial: str | None = None, status: int = 200) -> Response:
        full = {"site": self.site, "visitor": visitor, "can": visitor.can(), "now": now_ms(),
                "path": request.url.path, **context}
        name = partial if partial is not None and wants_partial(request) else template
        return self.answer(visitor, self.html(name, full), status)

    def answer(self, visitor: Visitor, body: str, status: int = 200) -> Response:
        response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
        if visitor.new:
            self.set_cookie(response, visitor.sid)
        return response

    def set_cookie(self, response: Response, sid: str) -> None:
        response.set_cookie(COOKIE, sid, httponly=True, samesite="lax", secure=self.secure_cookie, path="/")

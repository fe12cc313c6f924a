"""What every view works with: the Console (config, sessions, templates, clients, sampler) and the
checks each request passes: who is looking, and for a form, its CSRF token and the role's right."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

from raftsched.client.aio import AsyncClient

from .clients import ClientPool
from .config import ConsoleConfig
from .render import Renderer
from .sampler import Sampler
from .sessions import ACTIONS, COOKIE, CSRF_FIELD, Sessions, Visitor, may

MAX_STREAMS = 200  # live job pages open at once (each holds a WatchJob stream to the cluster)
MAX_FORM_FIELDS = 64

VERBS = {"submit": "submit jobs", "cancel": "cancel jobs", "pause": "pause schedules",
         "resume": "resume schedules", "trigger": "trigger schedules", "drain": "drain executors",
         "release": "release executors from quarantine",
         "transfer": "transfer leadership"}
assert set(VERBS) == set(ACTIONS)


class SignInRequired(Exception):
    """TLS mode and nobody signed in: the answer is the sign-in page."""


class Refused(Exception):
    """A request refused before it reached the cluster (CSRF, role): an error page with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Console:
    config: ConsoleConfig
    sessions: Sessions
    renderer: Renderer
    pool: ClientPool | None = None  # made in the running loop (the app's lifespan)
    sampler: Sampler | None = None
    streams: int = 0  # open event streams
    stopping: asyncio.Event | None = None  # set when the server begins to stop: event streams end

    def stop_streams(self) -> None:
        """From the server's signal handling: end every event stream (browsers reconnect later)."""
        if self.stopping is not None:
            self.stopping.set()

    def client(self, visitor: Visitor) -> AsyncClient:
        """The client that acts as `visitor` (with their token; the console's own in insecure mode)."""
        assert self.pool is not None, "the console's lifespan has not started"
        return self.pool.for_token(visitor.token)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def visitor_of(request: Request, *, signed_in: bool = True) -> Visitor:
    visitor = console_of(request).sessions.visit(request.cookies.get(COOKIE))
    if signed_in and not visitor.signed_in:
        raise SignInRequired()
    return visitor


async def action_form(request: Request, action: str) -> tuple[Visitor, dict[str, str]]:
    """The form of an action, once its origin, CSRF token, session and role check out."""
    console = console_of(request)
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Refused(403, "this form came from another site")
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    if not console.sessions.check_csrf(request.cookies.get(COOKIE), values.get(CSRF_FIELD)):
        raise Refused(403, "this form's CSRF token is missing or out of date: reload the page and try again")
    visitor = visitor_of(request)
    if not may(visitor.role, action):
        raise Refused(403, f"your role ({visitor.role}) may not {VERBS[action]}")
    return visitor, values


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to after a form (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target

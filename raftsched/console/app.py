"""The console as an ASGI app: its routes, its lifespan (clients and sampler, made inside the
running loop and closed with it), and the one place errors become pages.

    GET  /                         cluster               POST /leader/transfer
    GET  /jobs                     jobs (filters, pages)  POST /jobs                    (submit)
    GET  /jobs/{id}                one job                POST /jobs/{id}/cancel
    GET  /jobs/{id}/events         its WatchJob as server-sent events
    GET  /jobs/{id}/dependents     jobs that depend on it
    GET  /executors                executors              POST /executors/{id}/drain, /release
    GET  /schedules                schedules
    GET  /schedules/{name}         one schedule           POST /schedules/{name}/pause|resume|trigger
    GET  /login                    sign-in (TLS mode)     POST /login, POST /logout
    GET  /healthz                  "ok" (no sign-in)      GET /static/...

A page's live region is the same URL with `?partial=1`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from raftsched.client.errors import ClientError
from raftsched.security.tokens import TokenTable

from .clients import ClientPool
from .config import ConsoleConfig
from .context import Console, Refused, SignInRequired, console_of, visitor_of
from .guard import Guard
from .render import Renderer, wants_partial
from .sampler import Sampler
from .sessions import Sessions
from .views import actions, cluster, executors, jobs, live, schedules, signin

# gRPC status -> HTTP status of the page that reports it.
HTTP_STATUS = {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
               "FAILED_PRECONDITION": 409, "ALREADY_EXISTS": 409, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 503,
               "RESOURCE_EXHAUSTED": 503}


def make_console(config: ConsoleConfig) -> Console:
    tokens = TokenTable.load(config.tokens_file) if config.auth else None
    site = {"auth": config.auth, "insecure": not config.auth, "exposed": not config.loopback,
            "https": config.https}
    return Console(config, Sessions(tokens=tokens), Renderer(site=site, secure_cookie=config.https))


def build_app(config: ConsoleConfig) -> Starlette:
    console = make_console(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        console.stopping = asyncio.Event()
        console.pool = ClientPool(config.cluster, tls=config.tls, own_token=config.token)
        console.sampler = Sampler(console.pool.own)
        task = asyncio.get_running_loop().create_task(console.sampler.run(), name="console-sampler")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await console.pool.close()

    app = Starlette(routes=routes(), lifespan=lifespan,
                    middleware=[Middleware(Guard, loopback_hosts_only=config.loopback)],
                    exception_handlers={ClientError: on_client_error, Refused: on_refused,
                                        SignInRequired: on_sign_in_required})
    app.state.console = console
    return app


def routes() -> list[Route | Mount]:
    return [
        Route("/", cluster.cluster_page),
        Route("/leader/transfer", actions.transfer_leader, methods=["POST"]),
        Route("/jobs", jobs.jobs_page),
        Route("/jobs", actions.submit_job, methods=["POST"]),
        Route("/jobs/{job_id}", jobs.job_page),
        Route("/jobs/{job_id}/events", live.job_events),
        Route("/jobs/{job_id}/dependents", jobs.dependents_page),
        Route("/jobs/{job_id}/cancel", actions.cancel_job, methods=["POST"]),
        Route("/executors", executors.executors_page),
        Route("/executors/{executor_id}/drain", actions.drain_executor, methods=["POST"]),
        Route("/executors/{executor_id}/release", actions.release_executor, methods=["POST"]),
        Route("/schedules", schedules.schedules_page),
        Route("/schedules/{name}", schedules.schedule_page),
        Route("/schedules/{name}/pause", actions.pause_schedule, methods=["POST"]),
        Route("/schedules/{name}/resume", actions.resume_schedule, methods=["POST"]),
        Route("/schedules/{name}/trigger", actions.trigger_schedule, methods=["POST"]),
        Route("/login", signin.login_page),
        Route("/login", signin.login, methods=["POST"]),
        Route("/logout", signin.logout, methods=["POST"]),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(packages=[("raftsched.console", "static")]), name="static"),
    ]


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})


def error_page(request: Request, status: int, message: str) -> Response:
    console = console_of(request)
    visitor = visitor_of(request, signed_in=False)
    template = "_live_error.html" if wants_partial(request) else "error.html"
    return console.renderer.page(request, visitor, template, {"error": message, "status": status}, status=status)


async def on_client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    status = HTTP_STATUS.get(exc.code, 502)
    prefix = "cluster unavailable: " if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else ""
    return error_page(request, status, f"{prefix}{exc.message} ({exc.code})")


async def on_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return error_page(request, exc.status, exc.message)


async def on_sign_in_required(request: Request, exc: Exception) -> Response:
    if wants_partial(request) or request.url.path.endswith("/events") or request.method != "GET":
        return PlainTextResponse("sign in first\n", status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

"""`/login` and `/logout` (TLS mode): sign in with a token from the cluster's tokens file.

The sign-in form carries a CSRF token like every form (no one can sign a browser in behind its
back), and a successful sign-in starts a new session id, never the one the form came with.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..context import MAX_FORM_FIELDS, Refused, console_of, safe_next, visitor_of
from ..sessions import COOKIE, CSRF_FIELD, SignInError

MAX_TOKEN_CHARS = 512


async def login_page(request: Request) -> Response:
    console = console_of(request)
    if not console.sessions.auth:
        return RedirectResponse("/", status_code=303)
    visitor = visitor_of(request, signed_in=False)
    context = {"next": safe_next(request.query_params.get("next")), "error": ""}
    return console.renderer.page(request, visitor, "login.html", context)


async def login(request: Request) -> Response:
    console = console_of(request)
    if not console.sessions.auth:
        return RedirectResponse("/", status_code=303)
    visitor = visitor_of(request, signed_in=False)
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    token, target = str(form.get("token") or ""), safe_next(str(form.get("next") or ""))
    if not console.sessions.check_csrf(request.cookies.get(COOKIE), str(form.get(CSRF_FIELD) or "")):
        raise Refused(403, "this form's CSRF token is missing or out of date: reload the page and try again")
    try:
        signed_in = console.sessions.sign_in(token[:MAX_TOKEN_CHARS])
    except SignInError as e:
        context = {"next": target, "error": f"cannot sign in: {e}"}
        return console.renderer.page(request, visitor, "login.html", context, status=401)
    console.sessions.sign_out(request.cookies.get(COOKIE))
    response = RedirectResponse(target, status_code=303)
    console.renderer.set_cookie(response, signed_in.sid)
    return response


async def logout(request: Request) -> Response:
    console = console_of(request)
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    sid = request.cookies.get(COOKIE)
    if not console.sessions.check_csrf(sid, str(form.get(CSRF_FIELD) or "")):
        raise Refused(403, "this form's CSRF token is missing or out of date: reload the page and try again")
    console.sessions.sign_out(sid)
    response = RedirectResponse("/login" if console.sessions.auth else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response

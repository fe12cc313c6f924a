"""ASGI middleware in front of every route: security headers, and the Host check on loopback.

- Content-Security-Policy allows only the console's own script and stylesheet: no inline script,
  no inline style, no other origin. User data is escaped by the templates in any case; this is
  the second wall (an escaping mistake still could not run a script).
- A console on a loopback address answers only requests whose Host names a loopback address
  (localhost, 127.0.0.0/8, ::1). Otherwise a web page whose name an attacker re-points at
  127.0.0.1 (DNS rebinding) could read the console as its own origin, CSRF tokens included.
- A request body (the forms) must say its length, at most MAX_BODY bytes: the form parser reads a
  body into memory.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import is_loopback

MAX_BODY = 1 << 20

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def host_name(host_header: str) -> str:
    """'127.0.0.1:8080' -> '127.0.0.1', '[::1]:8080' -> '::1', 'localhost' -> 'localhost'."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


class Guard:
    def __init__(self, app: ASGIApp, *, loopback_hosts_only: bool) -> None:
        self.app = app
        self.loopback_hosts_only = loopback_hosts_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.loopback_hosts_only and not is_loopback(host_name(headers.get("host", ""))):
            await _refuse(send, 421, "this console answers only on a loopback address (localhost, 127.0.0.1, [::1])")
            return
        if scope["method"] not in ("GET", "HEAD") and not _length_ok(headers.get("content-length")):
            await _refuse(send, 413, f"a request body must give its length, at most {MAX_BODY} bytes")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _length_ok(value: str | None) -> bool:
    return value is not None and value.isdigit() and int(value) <= MAX_BODY


async def _refuse(send: Send, status: int, message: str) -> None:
    body = (message + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})

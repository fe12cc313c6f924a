"""Who is looking at the console, what they may do, and the CSRF token of their forms.

Every browser gets a session cookie (`raftsched_console`, HttpOnly, SameSite=Strict, Secure over
HTTPS) holding a random id. Its forms carry `csrf` = HMAC-SHA256(process secret, session id): a
page on another site can neither read the cookie nor compute the token, so a POST without the
right token is refused (403) before anything else is looked at.

    insecure mode (no TLS to the cluster)   nobody signs in; the cluster checks nobody either, so
                                            everyone acts as `admin` (the pages say so in a banner)
    TLS                                     people sign in with a token from the cluster's tokens
                                            file; the session keeps the token (the console calls
                                            the cluster with it, so the cluster checks the role
                                            too) and its role, which gates each action here first

Sessions live in memory, at most MAX_SESSIONS, each until IDLE_S without use; a restarted console
forgets them (people sign in again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from raftsched.security import roles
from raftsched.security.tokens import TokenTable

COOKIE = "raftsched_console"
CSRF_FIELD = "csrf"
MAX_SESSIONS = 10_000
IDLE_S = 8 * 3600.0
_ID_BYTES = 24

# Each console action and the RPC it makes: the role table in raftsched.security.roles decides.
ACTIONS: dict[str, str] = {
    "submit": "/raftsched.v1.Scheduler/SubmitJob",
    "cancel": "/raftsched.v1.Scheduler/CancelJob",
    "pause": "/raftsched.v1.Scheduler/PauseSchedule",
    "resume": "/raftsched.v1.Scheduler/ResumeSchedule",
    "trigger": "/raftsched.v1.Scheduler/TriggerSchedule",
    "drain": "/raftsched.v1.Scheduler/DrainExecutor",
    "release": "/raftsched.v1.Scheduler/ReleaseExecutor",
    "transfer": "/raftsched.v1.Admin/TransferLeader",
}


def may(role: str | None, action: str) -> bool:
    """Whether `role` may do console `action` (as the cluster would judge its RPC)."""
    return roles.may_call(role, ACTIONS[action])


@dataclass(frozen=True, slots=True)
class Visitor:
    """One request's caller: the session id (new: the answer must set the cookie), role and token."""

    sid: str
    role: str | None  # None: not signed in (TLS mode)
    token: str  # the cluster token acted with; "" in insecure mode
    csrf: str
    new: bool
    name: str = ""  # who, for logs and reasons: `token:<12 hex digits of its digest>` (never the token)

    @property
    def signed_in(self) -> bool:
        return self.role is not None

    def can(self) -> dict[str, bool]:
        return {action: may(self.role, action) for action in ACTIONS}


@dataclass(slots=True)
class _Session:
    token: str
    role: str
    name: str
    last_used: float


class SignInError(Exception):
    """A token the cluster's tokens file does not hold, or whose role cannot use the console."""


class Sessions:
    """Session ids, CSRF tokens and signed-in tokens; `auth` False: insecure mode (all admin)."""

    def __init__(self, *, tokens: TokenTable | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.auth = tokens is not None
        self._tokens = tokens
        self._secret = secrets.token_bytes(32)
        self._signed_in: OrderedDict[str, _Session] = OrderedDict()  # sid -> session, least recently used first
        self._clock = clock

    def csrf_for(self, sid: str) -> str:
        return hmac.new(self._secret, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, sid: str | None, submitted: str | None) -> bool:
        if not sid or not submitted:
            return False
        return hmac.compare_digest(self.csrf_for(sid), submitted)

    def visit(self, sid: str | None) -> Visitor:
        """The visitor behind a session cookie (a new anonymous session when there is none)."""
        if not sid or len(sid) > 64:
            return self._visitor(secrets.token_urlsafe(_ID_BYTES), None, new=True)
        return self._visitor(sid, self._session(sid), new=False)

    def sign_in(self, token: str) -> Visitor:
        """A new session (a fresh id: never the one the sign-in form came with) for a valid token."""
        if self._tokens is None:
            raise SignInError("this console has no sign-in (insecure mode)")
        identity = self._tokens.lookup(token.strip()) if token.strip() else None
        if identity is None or identity.role is None:
            raise SignInError("unknown token")
        if identity.role not in roles.CLIENT_ROLES:
            raise SignInError(f"a {identity.role} token cannot use the console")
        sid = secrets.token_urlsafe(_ID_BYTES)
        self._signed_in[sid] = _Session(token.strip(), identity.role, identity.name, self._clock())
        while len(self._signed_in) > MAX_SESSIONS:
            self._signed_in.popitem(last=False)
        return self._visitor(sid, self._signed_in[sid], new=True)

    def sign_out(self, sid: str | None) -> None:
        if sid:
            self._signed_in.pop(sid, None)

    def _session(self, sid: str) -> _Session | None:
        session = self._signed_in.get(sid)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_used > IDLE_S:
            del self._signed_in[sid]
            return None
        session.last_used = now
        self._signed_in.move_to_end(sid)
        return session

    def _visitor(self, sid: str, session: _Session | None, *, new: bool) -> Visitor:
        if not self.auth:
            return Visitor(sid, roles.ADMIN, "", self.csrf_for(sid), new)
        if session is None:
            return Visitor(sid, None, "", self.csrf_for(sid), new)
        return Visitor(sid, session.role, session.token, self.csrf_for(sid), new, session.name)

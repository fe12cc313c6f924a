"""What the sync and asyncio clients share: the cluster's addresses and its last known leader,
deadlines, and TLS with an optional bearer token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raftsched.client.calls import Call
from raftsched.client.channels import check_token_needs_tls
from raftsched.client.routing import CallState, Router, default_attempt_timeout, plan
from raftsched.config import TLSConfig


class ClientBase:
    def __init__(self, addresses: Sequence[str], *, timeout: float = 10.0, tls: TLSConfig | None = None,
                 attempt_timeout: float | None = None, token: str = "") -> None:
        self._router = Router.of(addresses)
        self._timeout = timeout
        self._attempt_timeout = attempt_timeout or default_attempt_timeout(timeout)
        self._tls = tls if tls is not None and tls.enabled else None
        check_token_needs_tls(self._tls, token)
        self._token = token
        self._stubs: dict[tuple[str, str], Any] = {}  # (service, address) -> stub

    @property
    def leader(self) -> str:
        """The address that last served a call or was named as leader ('' when none yet)."""
        return self._router.leader

    def _plan(self, call: Call[Any], timeout: float | None, *, capped: bool = True) -> CallState:
        return plan(self._router, self._timeout if timeout is None else timeout,
                    idempotent=call.idempotent, attempt_timeout=self._attempt_timeout if capped else None)

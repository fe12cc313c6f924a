"""The console's clients of the cluster: its own, and one per signed-in token.

A call on someone's behalf goes out with their token (over the console's TLS connection), so the
cluster judges it by their role, whatever the console decided before. The console's own client
(its certificate, or --token-file) does only the background status sampling. Clients per token
are kept for reuse, at most MAX_TOKEN_CLIENTS, the least recently used closed first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence

from raftsched.client.aio import AsyncClient
from raftsched.config import TLSConfig

MAX_TOKEN_CLIENTS = 64
DEFAULT_TIMEOUT_S = 5.0  # a page waits no longer for the cluster (retries and leader changes included)


class ClientPool:
    def __init__(self, addresses: Sequence[str], *, tls: TLSConfig, own_token: str = "",
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._addresses = list(addresses)
        self._tls = tls if tls.enabled else None
        self._timeout = timeout
        self.own = AsyncClient(self._addresses, timeout=timeout, tls=self._tls, token=own_token)
        self._by_token: OrderedDict[str, AsyncClient] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def for_token(self, token: str) -> AsyncClient:
        """The client acting with `token`; the console's own one for "" (insecure mode)."""
        if not token:
            return self.own
        client = self._by_token.get(token)
        if client is None:
            client = self._by_token[token] = AsyncClient(self._addresses, timeout=self._timeout, tls=self._tls,
                                                         token=token)
            while len(self._by_token) > MAX_TOKEN_CLIENTS:
                _, evicted = self._by_token.popitem(last=False)
                task = asyncio.get_running_loop().create_task(evicted.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self._by_token.move_to_end(token)
        return client

    async def close(self) -> None:
        clients = [self.own, *self._by_token.values()]
        self._by_token.clear()
        for client in clients:
            await client.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

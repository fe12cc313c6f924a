"""`warm_up` (run when a node starts) loads what httpx would otherwise import on the event loop the
first time this node leads (a client made) and stops leading (that client closed): 40 ms and 30 ms
held the loop of a new and an old leader in leader-transfer timelines."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import asyncio, sys
from raftsched.notify.delivery import warm_up
import httpx

async def main() -> None:
    if {warm}:
        await warm_up()
    before = set(sys.modules)
    async with httpx.AsyncClient(trust_env=False):
        pass
    print(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("httpcore", "h11", "anyio")))

asyncio.run(main())
"""


def _lazily_imported(warm: bool) -> str:
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(warm=warm)], capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout.strip()


def test_a_first_client_after_warm_up_imports_nothing_on_the_loop() -> None:
    assert _lazily_imported(warm=True) == "[]"


def test_without_warm_up_a_first_client_does() -> None:
    """The other side of the test above: the imports it guards against do happen otherwise."""
    found = _lazily_imported(warm=False)
    assert "anyio._backends._asyncio" in found and "httpcore" in found, found

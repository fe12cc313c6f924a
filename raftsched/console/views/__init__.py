"""The console's routes, one module per page group: each handler reads what its page shows
(page-sized, see `queries`) and renders it; `actions` handles the forms; `live` relays WatchJob."""

from __future__ import annotations

# What a finished action says on the page it returns to: fixed words, chosen by code, so that a
# link cannot make the console show text of someone else's choosing.
FLASH = {
    "submitted": "Job submitted.",
    "cancelled": "Cancel requested.",
    "paused": "Schedule paused.",
    "resumed": "Schedule resumed.",
    "triggered": "Schedule triggered: this is the job it made.",
    "drained": "Executor draining: it gets no new work; its running tasks finish.",
    "released": "Quarantine ended: the executor takes new work again.",
    "transferred": "Leadership transfer requested.",
    "signed-in": "Signed in.",
}


def flash(code: str | None) -> str:
    return FLASH.get(code or "", "")

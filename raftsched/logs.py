"""Log set-up for the long-running processes: text (the default) or JSON lines.

A JSON line carries `ts` (UTC, ISO 8601 with milliseconds), `level`, `node`, `term` (once the
node knows it), `logger`, `message`, the gRPC `request_id` while a request is being served (from
the caller's `x-request-id` metadata, else made up by `raftsched.api.errors.guarded`), and `exc`
with the traceback when there is one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from contextvars import ContextVar


class MadeUpRequestId:
    """The id of a request that came without one, made up only when a log line needs it: a
    random id for every call (os.urandom) showed in the leader's profile of unary submits."""

    __slots__ = ("_text",)

    def __init__(self) -> None:
        self._text = ""

    def __str__(self) -> str:
        if not self._text:
            self._text = os.urandom(6).hex()
        return self._text


REQUEST_ID: ContextVar[str | MadeUpRequestId] = ContextVar("raftsched_request_id", default="")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(node)s] %(name)s: %(message)s"


class ContextFilter(logging.Filter):
    """Adds node, term and request_id to every record; `term` is set once the node exists."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id
        self.term: Callable[[], int | None] = lambda: None

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node_id
        record.term = self.term()
        record.request_id = str(REQUEST_ID.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        ms = int(record.created * 1000) % 1000
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z",
            "level": record.levelname.lower(),
            "node": getattr(record, "node", ""),
        }
        term = getattr(record, "term", None)
        if term is not None:
            out["term"] = term
        out["logger"] = record.name
        out["message"] = record.getMessage()
        request_id = getattr(record, "request_id", "")
        if request_id:
            out["request_id"] = request_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def setup(node_id: str, *, level: str = "info", fmt: str = "text") -> ContextFilter:
    """Configure the root logger for one process; returns the filter, to tell it the term."""
    handler = logging.StreamHandler()
    context = ContextFilter(node_id)
    handler.addFilter(context)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return context

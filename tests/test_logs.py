"""Request ids on log lines (raftsched.logs): the caller's x-request-id, else one made up the first
time a line of that request is logged, and the same for every later line of it."""

from __future__ import annotations

import contextvars
import json
import logging
import re

from raftsched.logs import REQUEST_ID, ContextFilter, JsonFormatter, MadeUpRequestId


def _line(message: str) -> dict[str, object]:
    record = logging.LogRecord("raftsched.test", logging.INFO, __file__, 1, message, None, None)
    assert ContextFilter("n1").filter(record)
    return json.loads(JsonFormatter().format(record))


def _in_request(request_id: str | MadeUpRequestId) -> list[dict[str, object]]:
    def serve() -> list[dict[str, object]]:
        REQUEST_ID.set(request_id)
        return [_line("first"), _line("second")]

    return contextvars.copy_context().run(serve)


def test_a_caller_given_request_id_is_on_every_line() -> None:
    lines = _in_request("caller-7")
    assert [line["request_id"] for line in lines] == ["caller-7", "caller-7"]


def test_a_made_up_request_id_is_made_once_and_kept_for_the_request() -> None:
    lines = _in_request(MadeUpRequestId())
    first, second = (line["request_id"] for line in lines)
    assert isinstance(first, str) and re.fullmatch(r"[0-9a-f]{12}", first), first
    assert second == first
    assert _in_request(MadeUpRequestId())[0]["request_id"] != first  # each request its own


def test_outside_a_request_a_line_has_no_request_id() -> None:
    assert "request_id" not in contextvars.Context().run(_line, "idle")

"""`quote`: user input as it may appear in an error message or a log line (issue 14).

Every message that names what a caller sent (a job id, a schedule name, a time zone, a label, an
executor id, a handler name, a cron expression) quotes it with `quote`, which keeps at most
ECHO_CHARS characters of it and says how long the rest was. A 1 MB job id then costs a few hundred
bytes of error, not 1 MB of trailing metadata the client cannot even receive.

No imports: every layer may use it, the pure Raft core and the web console included.
"""

from __future__ import annotations

ECHO_CHARS = 100  # of a value a caller sent, quoted back in an error


def quote(text: object, limit: int = ECHO_CHARS) -> str:
    """`repr` of `text` (a str, or anything made a str), cut to `limit` characters; the cut is said."""
    value = text if isinstance(text, str) else str(text)
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"

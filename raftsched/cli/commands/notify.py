"""`raftsched notify add | list | remove | test`: notification sinks (SPEC §10, docs/alerting.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from raftsched.cli.common import Printer, make_client
from raftsched.cli.errors import UsageError
from raftsched.cli.output import notify_sinks_table

# The cluster checks every field again (and names it); these are for --help and early errors.
EVENT_TYPES = ("job.failed", "job.attempt_timed_out", "job.attempt_fenced", "executor.down",
               "executor.quarantined", "schedule.skipped", "leader.changed", "test")
MAX_SECRET_BYTES = 1024


def read_secret(path: str) -> bytes:
    """The secret in FILE, without one trailing newline (what `echo secret > FILE` adds)."""
    try:
        raw = Path(path).read_bytes()[: MAX_SECRET_BYTES + 3]
    except OSError as err:
        raise UsageError(f"--secret-file {path}: {err.strerror or err}") from None
    secret = raw.removesuffix(b"\n").removesuffix(b"\r")
    if not secret:
        raise UsageError(f"--secret-file {path}: the file is empty")
    if len(secret) > MAX_SECRET_BYTES:
        raise UsageError(f"--secret-file {path}: a secret is at most {MAX_SECRET_BYTES} bytes")
    return secret


def parse_events(raw: str | None) -> list[str]:
    if not raw:
        return []
    events = [e.strip() for e in raw.split(",") if e.strip()]
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise UsageError(f"--events: unknown event type {unknown[0]!r} (known: {', '.join(EVENT_TYPES)})")
    return list(dict.fromkeys(events))


def cmd_add(args: argparse.Namespace) -> int:
    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url: only http:// and https:// URLs are accepted, not {args.url[:60]!r}")
    secret = read_secret(args.secret_file) if args.secret_file else b""
    events = parse_events(args.events)
    out = Printer(args)
    with make_client(args, admin=True) as client:
        sink = client.add_notify_sink(args.name, args.url, secret, events)
    if out.json:
        out.message(sink)
    else:
        out.line(f"added sink {sink.name} -> {sink.url} ({', '.join(sink.events) or 'every event'}; "
                 f"{'signed' if sink.has_secret else 'NOT signed: no secret'})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args, admin=True) as client:
        sinks = client.list_notify_sinks(stale=args.stale).sinks
    if out.json:
        out.messages(sinks)
    elif sinks:
        out.show(notify_sinks_table(sinks))
    else:
        out.line("no sinks")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with make_client(args, admin=True) as client:
        client.remove_notify_sink(args.name)
    Printer(args).line(f"removed sink {args.name} and its undelivered events")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args, admin=True) as client:
        response = client.test_notify_sink(args.name)
    if out.json:
        out.message(response)
    else:
        out.line(f"queued test event {response.event_id} for {args.name} (see `raftsched notify list`)")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             client: argparse.ArgumentParser) -> None:
    notify = commands.add_parser("notify", help="notification sinks: signed webhooks (docs/alerting.md)")
    sub = notify.add_subparsers(dest="notify_command", metavar="COMMAND", required=True)
    add = sub.add_parser("add", parents=[client], help="add a webhook sink")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--url", required=True, help="http:// or https:// URL the leader POSTs events to")
    add.add_argument("--secret-file", metavar="FILE", help="file holding the HMAC-SHA256 key of X-Raftsched-Signature")
    add.add_argument("--events", metavar="E1,E2,...",
                     help=f"comma-separated event types (default: all of {', '.join(EVENT_TYPES)})")
    add.set_defaults(handler_fn=cmd_add)
    listing = sub.add_parser("list", parents=[client], help="sinks with pending/delivered/failed counts")
    listing.add_argument("--stale", action="store_true", help="read from the node asked (may lag)")
    listing.set_defaults(handler_fn=cmd_list)
    for name, handler, what in (("remove", cmd_remove, "remove a sink (its undelivered events go too)"),
                                ("test", cmd_test, "send a `test` event to a sink")):
        parser = sub.add_parser(name, parents=[client], help=what)
        parser.add_argument("name", metavar="NAME")
        parser.set_defaults(handler_fn=handler)

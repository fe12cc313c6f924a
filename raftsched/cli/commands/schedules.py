"""`raftsched schedule create | list | get | pause | resume | trigger | delete`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime

from raftsched.cli.commands.jobs import add_job_spec_flags, spec_from_args
from raftsched.cli.common import Printer, make_client
from raftsched.cli.errors import UsageError
from raftsched.cli.output import job_state, schedule_detail, schedules_table
from raftsched.cli.parsing import parse_duration_ms
from raftsched.client import Client
from raftsched.v1 import scheduler_pb2

OVERLAP = {"allow": scheduler_pb2.OVERLAP_POLICY_ALLOW, "skip": scheduler_pb2.OVERLAP_POLICY_SKIP,
           "buffer-one": scheduler_pb2.OVERLAP_POLICY_BUFFER_ONE,
           "cancel-other": scheduler_pb2.OVERLAP_POLICY_CANCEL_OTHER}
CATCHUP = {"skip": scheduler_pb2.CATCHUP_POLICY_SKIP, "once": scheduler_pb2.CATCHUP_POLICY_ONCE,
           "all": scheduler_pb2.CATCHUP_POLICY_ALL}


def schedule_spec_from_args(args: argparse.Namespace) -> scheduler_pb2.ScheduleSpec:
    template = spec_from_args(args)
    template.name = template.name or args.schedule_name
    spec = scheduler_pb2.ScheduleSpec(name=args.schedule_name, cron=args.cron or "", timezone=args.tz or "",
                                      template=template, overlap=OVERLAP[args.overlap],
                                      catchup=CATCHUP[args.catchup], catchup_max=args.catchup_max or 0,
                                      keep_succeeded=_count(args.keep_succeeded, "--keep-succeeded"),
                                      keep_failed=_count(args.keep_failed, "--keep-failed"))
    if args.every:
        spec.every_ms = parse_duration_ms(args.every, name="--every")
        if spec.every_ms <= 0:
            raise UsageError("--every must be longer than 0")
    if args.tz and not args.cron:
        raise UsageError("--tz applies to --cron only")
    if args.catchup_window:
        spec.catchup_window_ms = parse_duration_ms(args.catchup_window, name="--catchup-window")
    if args.jitter:
        spec.jitter_ms = parse_duration_ms(args.jitter, name="--jitter")
    if args.start:
        spec.start_ms = parse_time_ms(args.start, name="--start")
    if args.end:
        spec.end_ms = parse_time_ms(args.end, name="--end")
    if spec.start_ms and spec.end_ms and spec.end_ms <= spec.start_ms:
        raise UsageError("--end must be after --start")
    return spec


def _count(value: int | None, name: str) -> int:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be at least 1 (leave it out to keep every job until --job-retention)")
    return value or 0


def parse_time_ms(text: str, *, name: str) -> int:
    """An ISO 8601 time (a zone offset or Z; UTC when none) or milliseconds since the Unix epoch."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name}: {text!r} is neither an ISO 8601 time nor milliseconds since the epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def cmd_create(args: argparse.Namespace) -> int:
    spec = schedule_spec_from_args(args)
    out = Printer(args)
    with make_client(args) as client:
        schedule = client.create_schedule(spec)
    if out.json:
        out.message(schedule)
    else:
        out.show(schedule_detail(schedule))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args) as client:
        schedules = client.list_schedules(stale=args.stale).schedules
    if out.json:
        out.messages(schedules)
    else:
        out.show(schedules_table(schedules))
    return 0


def _show_one(args: argparse.Namespace, call: Callable[[Client], scheduler_pb2.Schedule]) -> int:
    out = Printer(args)
    with make_client(args) as client:
        schedule = call(client)
    if out.json:
        out.message(schedule)
    else:
        out.show(schedule_detail(schedule))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    return _show_one(args, lambda c: c.get_schedule(args.name, stale=args.stale))


def cmd_pause(args: argparse.Namespace) -> int:
    return _show_one(args, lambda c: c.pause_schedule(args.name, args.note or ""))


def cmd_resume(args: argparse.Namespace) -> int:
    return _show_one(args, lambda c: c.resume_schedule(args.name))


def cmd_trigger(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args) as client:
        job = client.trigger_schedule(args.name)
    if out.json:
        out.message(job)
    else:
        out.line(f"schedule {args.name} fired job {job.id} ({job_state(job.state)})")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args) as client:
        response = client.delete_schedule(args.name)
    if out.json:
        out.message(response)
    else:
        out.line(f"schedule {args.name} deleted")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             client: argparse.ArgumentParser, client_no_timeout: argparse.ArgumentParser) -> None:
    schedule = commands.add_parser("schedule", help="recurring schedules")
    sub = schedule.add_subparsers(dest="schedule_command", metavar="COMMAND", required=True)
    _register_create(sub, client_no_timeout)
    listing = sub.add_parser("list", parents=[client], help="every schedule")
    listing.add_argument("--stale", action="store_true")
    listing.set_defaults(handler_fn=cmd_list)
    get = sub.add_parser("get", parents=[client], help="a schedule, its next and skipped fire times")
    get.add_argument("name")
    get.add_argument("--stale", action="store_true")
    get.set_defaults(handler_fn=cmd_get)
    pause = sub.add_parser("pause", parents=[client], help="stop firing (fire times are recorded as skipped)")
    pause.add_argument("name")
    pause.add_argument("--note", help="why, shown with the schedule")
    pause.set_defaults(handler_fn=cmd_pause)
    for name, handler, what in (("resume", cmd_resume, "fire again"),
                                ("trigger", cmd_trigger, "fire once now"),
                                ("delete", cmd_delete, "delete the schedule (its jobs stay)")):
        parser = sub.add_parser(name, parents=[client], help=what)
        parser.add_argument("name")
        parser.set_defaults(handler_fn=handler)


def _register_create(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                     client_no_timeout: argparse.ArgumentParser) -> None:
    create = sub.add_parser(
        "create", parents=[client_no_timeout], help="create a schedule",
        usage="raftsched schedule create NAME (--cron EXPR [--tz ZONE] | --every DURATION) [options] "
              "(--handler NAME | -- ARGV...)")
    create.add_argument("schedule_name", metavar="NAME")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="5 fields, or 6 with seconds first")
    when.add_argument("--every", metavar="DURATION", help="a fixed interval: 30s, 5m, 1h")
    create.add_argument("--tz", metavar="ZONE", help="IANA time zone of --cron (default UTC)")
    create.add_argument("--overlap", choices=list(OVERLAP), default="allow",
                        help="when the previous job still runs (default allow)")
    create.add_argument("--catchup", choices=list(CATCHUP), default="skip",
                        help="fire times missed while no leader could fire (default skip)")
    create.add_argument("--catchup-window", metavar="DURATION", help="how far back to catch up (default 1h)")
    create.add_argument("--catchup-max", type=int, metavar="N", help="most missed fires to run (default 100)")
    create.add_argument("--start", metavar="TIME", help="no fires before TIME (ISO 8601, or ms since the epoch)")
    create.add_argument("--end", metavar="TIME", help="no fires after TIME (ISO 8601, or ms since the epoch)")
    create.add_argument("--jitter", metavar="DURATION", help="delay each fire by < DURATION, same on every leader")
    create.add_argument("--keep-succeeded", type=int, metavar="N", help="keep only the last N succeeded jobs")
    create.add_argument("--keep-failed", type=int, metavar="N",
                        help="keep only the last N failed, cancelled or skipped jobs")
    add_job_spec_flags(create)
    create.set_defaults(handler_fn=cmd_create)

"""`raftsched job submit | get | list | cancel | watch | fence`."""

from __future__ import annotations

import argparse

from raftsched.cli.common import Printer, make_client
from raftsched.cli.errors import UsageError
from raftsched.cli.output import job_detail, job_state, jobs_table, watch_line
from raftsched.cli.parsing import build_job_spec, labels_from_flags, parse_state
from raftsched.client.calls import TERMINAL_STATES, JobFilter
from raftsched.v1 import jobs_pb2


def add_job_spec_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a job, shared by `job submit` and `schedule create`."""
    group = parser.add_argument_group("job")
    group.add_argument("--handler", metavar="NAME", help="an executor handler (noop, sleep, echo, fail)")
    group.add_argument("argv", nargs="*", metavar="-- ARGV", help="a command to run instead of a handler")
    group.add_argument("--name", help="a name for people")
    group.add_argument("--payload", metavar="TEXT|@FILE", help="bytes for the handler or the command's stdin")
    group.add_argument("--max-attempts", type=int, metavar="N", help="attempts before FAILED (default 3)")
    group.add_argument("--timeout", dest="job_timeout", metavar="DURATION",
                       help="per attempt: 500ms, 10s, 2m; a plain number is seconds (default none)")
    group.add_argument("--priority", type=int, metavar="N", help="higher runs first (-1000..1000)")
    group.add_argument("--depends-on", action="append", metavar="ID[,ID...]",
                       help="job ids that must succeed first (repeatable)")
    group.add_argument("--label", action="append", metavar="K=V",
                       help="a label the executor must have (repeatable)")
    group.add_argument("--slots", type=int, metavar="N", help="executor slots the job occupies (default 1)")
    group.add_argument("--idempotency-key", metavar="KEY", help="resubmitting it yields the same job")
    group.add_argument("--backoff-initial", metavar="DURATION", help="first retry delay (default 1s)")
    group.add_argument("--backoff-max", metavar="DURATION", help="longest retry delay (default 30s)")
    group.add_argument("--backoff-multiplier", type=float, metavar="X", help="retry delay growth (default 2)")


def spec_from_args(args: argparse.Namespace) -> jobs_pb2.JobSpec:
    return build_job_spec(
        handler=args.handler, argv=args.argv, name=args.name, payload=args.payload,
        max_attempts=args.max_attempts, timeout=args.job_timeout, priority=args.priority,
        depends_on=args.depends_on, labels=args.label, slots=args.slots,
        idempotency_key=args.idempotency_key, backoff_initial=args.backoff_initial,
        backoff_max=args.backoff_max, backoff_multiplier=args.backoff_multiplier)


def cmd_submit(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)  # before connecting: bad input never reaches the cluster
    out = Printer(args)
    with make_client(args) as client:
        response = client.submit_job(spec)
    if out.json:
        out.message(response.job)
    else:
        verb = "already existed" if response.existed else "submitted"
        out.line(f"job {response.job.id} {verb} ({job_state(response.job.state)})")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args) as client:
        job = client.get_job(args.id, stale=args.stale)
    if out.json:
        out.message(job)
    else:
        out.show(job_detail(job))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    state = parse_state(args.state) if args.state else jobs_pb2.JOB_STATE_UNSPECIFIED
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit: must be at least 1")
    where = JobFilter(newest_first=args.newest_first, name=args.name or "",
                      labels=labels_from_flags(args.label))
    out = Printer(args)
    with make_client(args) as client:
        jobs = client.iter_jobs(state, args.schedule or "", stale=args.stale, where=where, limit=args.limit)
        if out.json:
            out.messages(jobs)  # streamed page by page: a long list starts printing at once
        else:
            out.show(jobs_table(list(jobs)))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args) as client:
        job = client.cancel_job(args.id, args.reason or "")
    if out.json:
        out.message(job)
    else:
        out.line(f"job {job.id} is {job_state(job.state)}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Print each state change until the job ends; exit 0 when it SUCCEEDED, 1 otherwise."""
    out = Printer(args)
    last: tuple[int, int] | None = None
    final = jobs_pb2.JOB_STATE_UNSPECIFIED
    with make_client(args) as client:
        for job in client.watch_job(args.id):
            seen = (job.state, len(job.attempts))
            if seen != last:  # a reopened stream repeats the current state first
                out.message(job) if out.json else out.line(watch_line(job))
                last = seen
            final = job.state
    if final not in TERMINAL_STATES:
        return 1
    return 0 if final == jobs_pb2.JOB_STATE_SUCCEEDED else 1


def cmd_fence(args: argparse.Namespace) -> int:
    """Exit 0 while ATTEMPT is the job's current attempt, 1 when it is stale."""
    out = Printer(args)
    with make_client(args) as client:
        response = client.check_fence(args.id, args.attempt)
    if out.json:
        out.message(response)
    elif response.current:
        out.line(f"attempt {args.attempt} of {args.id} is current ({job_state(response.state)})")
    elif response.current_attempt == args.attempt:
        out.line(f"attempt {args.attempt} of {args.id} is no longer current: the job is "
                 f"{job_state(response.state)}")
    else:
        out.line(f"attempt {args.attempt} of {args.id} is stale: the current attempt is "
                 f"{response.current_attempt} ({job_state(response.state)})")
    return 0 if response.current else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             client: argparse.ArgumentParser, client_no_timeout: argparse.ArgumentParser) -> None:
    job = commands.add_parser("job", help="submit, inspect and cancel jobs")
    sub = job.add_subparsers(dest="job_command", metavar="COMMAND", required=True)
    submit = sub.add_parser("submit", parents=[client_no_timeout], help="submit a job",
                            usage="raftsched job submit [options] (--handler NAME | -- ARGV...)")
    add_job_spec_flags(submit)
    submit.set_defaults(handler_fn=cmd_submit)
    get = sub.add_parser("get", parents=[client], help="show a job and all its attempts")
    get.add_argument("id")
    get.add_argument("--stale", action="store_true", help="read from the node asked (may lag)")
    get.set_defaults(handler_fn=cmd_get)
    listing = sub.add_parser("list", parents=[client], help="list jobs")
    listing.add_argument("--state", metavar="S", help="only jobs in this state (queued, running, ...)")
    listing.add_argument("--schedule", metavar="NAME", help="only jobs made by this schedule")
    listing.add_argument("--name", metavar="TEXT", help="only jobs whose name contains TEXT")
    listing.add_argument("--label", action="append", metavar="K=V", help="only jobs with this label (repeatable)")
    listing.add_argument("--newest-first", action="store_true", help="newest first (default: submit order)")
    listing.add_argument("--limit", type=int, metavar="N", help="at most N jobs")
    listing.add_argument("--stale", action="store_true", help="read from the node asked (may lag)")
    listing.set_defaults(handler_fn=cmd_list)
    cancel = sub.add_parser("cancel", parents=[client], help="cancel a job")
    cancel.add_argument("id")
    cancel.add_argument("--reason", help="recorded with the cancellation")
    cancel.set_defaults(handler_fn=cmd_cancel)
    watch = sub.add_parser("watch", parents=[client], help="print state changes until the job ends")
    watch.add_argument("id")
    watch.set_defaults(handler_fn=cmd_watch)
    fence = sub.add_parser("fence", parents=[client], help="exit 0 if ATTEMPT is current, 1 if stale")
    fence.add_argument("id")
    fence.add_argument("attempt", type=int)
    fence.set_defaults(handler_fn=cmd_fence)

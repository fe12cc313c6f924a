"""`raftsched executor list | drain ID | release ID` (the executor process itself is in processes.py)."""

from __future__ import annotations

import argparse

from raftsched.cli.common import Printer, make_client
from raftsched.cli.output import executors_table


def cmd_executor_list(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args) as client:
        executors = client.list_executors(stale=args.stale).executors
    if out.json:
        out.messages(executors)
    else:
        out.show(executors_table(executors))
    return 0


def cmd_executor_drain(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args, admin=True) as client:
        info = client.drain_executor(args.id)
    if out.json:
        out.message(info)
    else:
        out.show(executors_table([info]))
    return 0


def cmd_executor_release(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args, admin=True) as client:
        info = client.release_executor(args.id)
    if out.json:
        out.message(info)
    else:
        out.show(executors_table([info]))
    return 0


def register_admin(executor_sub: argparse._SubParsersAction[argparse.ArgumentParser],
                   client: argparse.ArgumentParser) -> None:
    listing = executor_sub.add_parser("list", parents=[client], help="executors, their leases and work")
    listing.add_argument("--stale", action="store_true", help="read from the node asked")
    listing.set_defaults(handler_fn=cmd_executor_list)
    drain = executor_sub.add_parser("drain", parents=[client],
                                    help="stop giving an executor work; its running tasks finish")
    drain.add_argument("id")
    drain.set_defaults(handler_fn=cmd_executor_drain)
    release = executor_sub.add_parser("release", parents=[client],
                                      help="end an executor's quarantine now (it takes work again)")
    release.add_argument("id")
    release.set_defaults(handler_fn=cmd_executor_release)

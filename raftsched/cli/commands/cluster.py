"""`raftsched status | member ... | leader transfer | snapshot save`."""

from __future__ import annotations

import argparse
import json

from raftsched.cli import progress
from raftsched.cli.common import Printer, make_client
from raftsched.cli.output import alarms_table, job_counts_line, members_table, status_table
from raftsched.config import check_address, check_id
from raftsched.v1 import admin_pb2

STATUS_TIMEOUT_S = 4.0
MEMBERSHIP_TIMEOUT_S = 90.0  # the server may wait for a learner to catch up (30 s) and the change to apply


def cmd_status(args: argparse.Namespace) -> int:
    out = Printer(args)
    # A diagnostic must answer quickly even when nothing is up: a short deadline unless given.
    timeout = None if getattr(args, "rpc_timeout", None) else STATUS_TIMEOUT_S
    with make_client(args) as client:
        response = client.status(local_only=args.local, timeout=timeout)
    if out.json:
        out.message(response)
    else:
        out.show(status_table(response))
        counts = job_counts_line(response)
        if counts:
            out.line(counts)
    return 0


def _show_members(out: Printer, response: admin_pb2.ListMembersResponse) -> int:
    if out.json:
        out.message(response)
    else:
        out.show(members_table(response))
    return 0


def cmd_member_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        return _show_members(Printer(args), client.list_members())


def cmd_member_add(args: argparse.Namespace) -> int:
    check_id(args.id, "member id")
    check_address(args.address, "member address")
    with make_client(args, admin=True, default_timeout=MEMBERSHIP_TIMEOUT_S) as client:
        return _show_members(Printer(args), client.add_member(args.id, args.address, args.learner))


def cmd_member_promote(args: argparse.Namespace) -> int:
    with make_client(args, admin=True, default_timeout=MEMBERSHIP_TIMEOUT_S) as client:
        return _show_members(Printer(args), client.promote_member(args.id))


def cmd_member_remove(args: argparse.Namespace) -> int:
    with make_client(args, admin=True, default_timeout=MEMBERSHIP_TIMEOUT_S) as client:
        return _show_members(Printer(args), client.remove_member(args.id))


def cmd_leader_transfer(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args, admin=True, default_timeout=MEMBERSHIP_TIMEOUT_S) as client:
        response = client.transfer_leader(args.target or "")
    if out.json:
        out.message(response)
    else:
        out.line(f"leader is now {response.leader}")
    return 0


def cmd_snapshot_save(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args, admin=True) as client, progress.transfer(f"saving a snapshot to {args.file}") as shown:
        size = client.save_snapshot(args.file, progress=shown)
    if out.json:
        print(json.dumps({"path": args.file, "bytes": size}), flush=True)
    else:
        out.line(f"saved a snapshot of {size} bytes to {args.file}")
    return 0


def cmd_alarm_list(args: argparse.Namespace) -> int:
    out = Printer(args)
    with make_client(args) as client:
        alarms = client.list_alarms(stale=args.stale).alarms
    if out.json:
        out.messages(alarms)
    elif alarms:
        out.show(alarms_table(alarms))
    else:
        out.line("no alarms")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             client: argparse.ArgumentParser) -> None:
    status = commands.add_parser("status", parents=[client], help="every node's role, term and indexes")
    status.add_argument("--local", action="store_true", help="only the node asked, not its peers")
    status.set_defaults(handler_fn=cmd_status)
    alarm = commands.add_parser("alarm", help="alarms raised on nodes (CORRUPT)")
    alarm_sub = alarm.add_subparsers(dest="alarm_command", metavar="COMMAND", required=True)
    alarms = alarm_sub.add_parser("list", parents=[client], help="active alarms (--json: one object a line)")
    alarms.add_argument("--stale", action="store_true", help="read from the node asked (may lag)")
    alarms.set_defaults(handler_fn=cmd_alarm_list)
    _register_member(commands, client)
    leader = commands.add_parser("leader", help="leadership")
    leader_sub = leader.add_subparsers(dest="leader_command", metavar="COMMAND", required=True)
    transfer = leader_sub.add_parser("transfer", parents=[client], help="hand leadership to a node")
    transfer.add_argument("target", nargs="?", metavar="ID", help="default: the most up-to-date follower")
    transfer.set_defaults(handler_fn=cmd_leader_transfer)


def _register_member(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                     client: argparse.ArgumentParser) -> None:
    member = commands.add_parser("member", help="cluster membership")
    sub = member.add_subparsers(dest="member_command", metavar="COMMAND", required=True)
    sub.add_parser("list", parents=[client], help="voters and learners").set_defaults(
        handler_fn=cmd_member_list)
    add = sub.add_parser("add", parents=[client], help="add a node (as a learner with --learner)")
    add.add_argument("id")
    add.add_argument("address", metavar="ADDR")
    add.add_argument("--learner", action="store_true", help="replicate to it without a vote")
    add.set_defaults(handler_fn=cmd_member_add)
    for name, handler, what in (("promote", cmd_member_promote, "make a learner a voter"),
                                ("remove", cmd_member_remove, "remove a node")):
        parser = sub.add_parser(name, parents=[client], help=what)
        parser.add_argument("id")
        parser.set_defaults(handler_fn=handler)


def register_snapshot_save(snapshot_sub: argparse._SubParsersAction[argparse.ArgumentParser],
                           client: argparse.ArgumentParser) -> None:
    save = snapshot_sub.add_parser("save", parents=[client], help="stream a backup of the state to FILE")
    save.add_argument("file", metavar="FILE")
    save.set_defaults(handler_fn=cmd_snapshot_save)

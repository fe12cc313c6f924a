"""The long-running processes (`node`, `executor`) and the offline tools (`snapshot restore`,
`certs init`). Their code is imported only when the command runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from raftsched.cli import progress
from raftsched.cli.commands import cluster, executors
from raftsched.cli.common import lazy_attr
from raftsched.cli.errors import CommandFailed
from raftsched.config import (
    EXECUTOR_SETTINGS,
    NODE_SETTINGS,
    ConfigError,
    Setting,
    check_id,
    load_executor_config,
    load_node_config,
    node_config_toml,
    parse_peers,
)


def cmd_node(args: argparse.Namespace) -> int:
    config = load_node_config(args)
    if args.print_config:
        print(node_config_toml(config), end="", flush=True)
        return 0
    run_node = lazy_attr("raftsched.node", "run_node", "the scheduler node")
    return int(run_node(config))


def cmd_executor_process(args: argparse.Namespace) -> int:
    config = load_executor_config(args)
    agent_main = lazy_attr("raftsched.executor.agent", "main", "the executor agent")
    return int(agent_main(config))


def cmd_snapshot_restore(args: argparse.Namespace) -> int:
    """Write a fresh data dir from a backup; start a node on it with the same --id and --peers."""
    check_id(args.id, "--id")
    peers = parse_peers(args.peers, "--peers")
    if args.id not in peers:
        raise ConfigError(f"--peers must include this node's id {args.id!r}")
    restore = lazy_attr("raftsched.restore", "restore_snapshot", "snapshot restore")
    try:
        with progress.steps(f"restoring {args.file}") as step:
            restore(args.file, args.data_dir, args.id, peers, step)
    except (ValueError, OSError) as e:
        raise CommandFailed(f"cannot restore {args.file}: {e}") from e
    print(f"restored {args.file} into {args.data_dir}; start it with: raftsched node --id {args.id} "
          f"--data-dir {args.data_dir} --peers {args.peers}", flush=True)
    return 0


def cmd_certs_init(args: argparse.Namespace) -> int:
    """A development CA and node, executor, client and admin certificates in --dir."""
    init_dir = lazy_attr("raftsched.security.certs", "init_dir", "certs init")
    errors = lazy_attr("raftsched.security.certs", "CertsError", "certs init")
    try:
        written = init_dir(args.dir, names=args.name or (), days=args.days, force=args.force, nodes=args.node or (),
                           executors=args.executor or ())
    except errors as e:
        raise CommandFailed(str(e)) from e
    print(f"wrote {len(written)} files to {args.dir}: {', '.join(p.name for p in written)}", flush=True)
    print(f"nodes: --tls-dir {args.dir} (node-<id>.crt if made with --node, else node.crt); "
          f"executors: --tls-dir {args.dir} (executor.crt; with --executor ID, add --tls-cert "
          f"{args.dir}/executor-ID.crt --tls-key {args.dir}/executor-ID.key); "
          f"CLI: --tls-dir {args.dir} (client.crt, admin.crt for admin commands). Keep ca.key off the "
          "cluster's machines.", flush=True)
    return 0


def add_setting_flags(parser: argparse.ArgumentParser, settings: Sequence[Setting]) -> None:
    """One flag per setting; every default is None so that the environment and file can fill in."""
    parser.add_argument("--config", metavar="FILE", help="a TOML file of these settings ($RAFTSCHED_CONFIG)")
    for s in settings:
        if s.kind == "bool":
            parser.add_argument(s.flag, dest=s.name, action="store_const", const="true", help=s.help)
        elif s.kind == "labels":
            parser.add_argument(s.flag.removesuffix("s"), dest=s.name, action="append", metavar="K=V",
                                help=s.help)
        else:
            parser.add_argument(s.flag, dest=s.name, metavar=s.name.split("_")[-1].upper(), help=s.help)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             client: argparse.ArgumentParser) -> None:
    node = commands.add_parser("node", help="run one scheduler node",
                               description="Run one scheduler node. Every flag may also come from "
                               "RAFTSCHED_<NAME> or the --config file; flags win.")
    add_setting_flags(node, NODE_SETTINGS)
    node.add_argument("--print-config", action="store_true",
                      help="print the effective configuration as TOML (a file for --config) and exit")
    node.set_defaults(handler_fn=cmd_node)
    _register_executor(commands, client)
    snapshot = commands.add_parser("snapshot", help="backups")
    snapshot_sub = snapshot.add_subparsers(dest="snapshot_command", metavar="COMMAND", required=True)
    cluster.register_snapshot_save(snapshot_sub, client)
    restore = snapshot_sub.add_parser("restore", help="make a node's data dir from a backup (offline)")
    restore.add_argument("file", metavar="FILE")
    restore.add_argument("--data-dir", required=True, metavar="DIR")
    restore.add_argument("--id", required=True)
    restore.add_argument("--peers", required=True, metavar="ID=ADDR,...")
    restore.set_defaults(handler_fn=cmd_snapshot_restore)
    certs = commands.add_parser("certs", help="TLS certificates")
    certs_sub = certs.add_subparsers(dest="certs_command", metavar="COMMAND", required=True)
    init = certs_sub.add_parser("init", help="make a CA and node, executor and client certificates")
    init.add_argument("--dir", required=True, metavar="DIR")
    init.add_argument("--name", action="append", metavar="HOST",
                      help="another DNS name or IP for the certificates (repeatable; 127.0.0.1 and localhost "
                           "are always in)")
    init.add_argument("--node", action="append", metavar="ID",
                      help="also a certificate naming node ID (node-ID.crt; repeatable): peers then refuse "
                           "Raft messages its holder sends in another node's name")
    init.add_argument("--executor", action="append", metavar="ID",
                      help="also a certificate naming executor ID (executor-ID.crt; repeatable): the leader "
                           "then refuses its holder a registration under another executor id")
    init.add_argument("--days", type=int, default=365, metavar="N", help="validity of the leaf certificates")
    init.add_argument("--force", action="store_true", help="replace certificates already in DIR")
    init.set_defaults(handler_fn=cmd_certs_init)


def _register_executor(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                       client: argparse.ArgumentParser) -> None:
    """`executor` runs the agent; `executor list`, `executor drain ID` and `executor release ID` ask the cluster.

    The first positional word tells them apart: the process takes only flags.
    """
    executor = commands.add_parser(
        "executor", help="run an executor, or list/drain/release executors",
        usage="raftsched executor --cluster ADDR[,ADDR...] --id ID [--slots N] [--label K=V ...]\n"
              "       raftsched executor list | drain ID | release ID")
    add_setting_flags(executor, EXECUTOR_SETTINGS)
    executor.set_defaults(handler_fn=cmd_executor_process)
    sub = executor.add_subparsers(dest="executor_command", metavar="COMMAND", required=False)
    executors.register_admin(sub, client)

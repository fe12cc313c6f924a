"""`raftsched dev` (placeholder; written next)."""

from __future__ import annotations

import argparse


def cmd_dev(args: argparse.Namespace) -> int:
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("dev", help="a local 3-node cluster with 2 executors and demo jobs")
    parser.set_defaults(handler_fn=cmd_dev)

"""`raftsched console`: the web console (SPEC §11), a client of the cluster. Its code (and the web
stack it needs) is imported only when the command runs."""

from __future__ import annotations

import argparse

from raftsched.cli.commands.processes import add_setting_flags
from raftsched.cli.common import lazy_attr
from raftsched.console.config import CONSOLE_SETTINGS, load_console_config


def cmd_console(args: argparse.Namespace) -> int:
    config = load_console_config(args)
    run_console = lazy_attr("raftsched.console.server", "run_console", "the web console")
    return int(run_console(config))


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "console", help="serve the web console (http://127.0.0.1:8080/ by default)",
        description="Serve the web console: cluster, jobs, executors and schedules, with actions gated by role. "
                    "Every flag may also come from RAFTSCHED_<NAME> or the --config file; flags win. Without TLS "
                    "it serves only on loopback unless --insecure (see docs/security.md).")
    add_setting_flags(parser, CONSOLE_SETTINGS)
    parser.set_defaults(handler_fn=cmd_console)

"""`raftsched`: the one executable. Parses the command line, runs one handler per sub-command,
and turns every failure into one line on stderr and an exit code:

    0    done              1    the cluster refused or failed (or `job fence`: stale)
    2    bad command line or configuration, or a command not implemented yet
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, cast

from raftsched.cli import dev
from raftsched.cli.commands import cluster, console, jobs, notify, processes, schedules
from raftsched.cli.common import client_options
from raftsched.cli.errors import CommandFailed, UsageError
from raftsched.cli.parsing import hoist_trailing_json
from raftsched.client import ClientError, OutcomeUnknownError
from raftsched.config import ConfigError

PROG = "raftsched"
Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage, so every error is one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A fault-tolerant job scheduler on its own Raft log.")
    # Every nested parser is a _Parser too: add_subparsers passes the parent's class down.
    commands = cast("argparse._SubParsersAction[argparse.ArgumentParser]", parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True))
    client = client_options()
    client_no_timeout = client_options(rpc_timeout_flags=("--rpc-timeout",))
    dev.register(commands)
    processes.register(commands, client)
    console.register(commands)
    cluster.register(commands, client)
    jobs.register(commands, client, client_no_timeout)
    schedules.register(commands, client, client_no_timeout)
    notify.register(commands, client)
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _describe(error: ClientError) -> str:
    if isinstance(error, OutcomeUnknownError):
        return f"outcome unknown: {error.message} ({error.code}; it may or may not have taken effect: check first)"
    if error.code == "UNAVAILABLE":
        return f"cluster unavailable: {error.message}"
    if error.code == "NOT_FOUND":
        return f"not found: {error.message} ({error.code})"
    return f"{error.message} ({error.code})"


def run(argv: Sequence[str]) -> int:
    """Parse and run one command; exceptions are left to main()."""
    args = build_parser().parse_args(hoist_trailing_json(list(argv)))
    handler: Handler = args.handler_fn
    return handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return 130
    except (UsageError, ConfigError) as e:
        _error(str(e))
        return 2
    except ClientError as e:
        _error(_describe(e))
        return 1
    except CommandFailed as e:
        _error(str(e))
        return 1
    except BrokenPipeError:
        # Why: `raftsched job list | head` closes the pipe early; that is not an error.
        _silence_stdout()
        return 0
    except OSError as e:
        _error(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        return 1
    except Exception as e:  # the last line of defence: one line, never a traceback
        if os.environ.get("RAFTSCHED_DEBUG"):
            raise
        _error(f"unexpected {type(e).__name__}: {e} (set RAFTSCHED_DEBUG=1 for a traceback)")
        return 1


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())

"""What every client command shares: the cluster options, the client, and printing."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message
from rich.console import Console, RenderableType

from raftsched.cli.errors import NotImplementedYet, UsageError
from raftsched.cli.output import to_json
from raftsched.cli.parsing import parse_duration_s
from raftsched.client import Client
from raftsched.config import DEFAULT_CLUSTER, TLSConfig, parse_addresses, resolve_tls
from raftsched.security.tokens import TokenError, read_token_file

DEFAULT_RPC_TIMEOUT_S = 10.0
_WIDTH_WITHOUT_TTY = 200  # rich falls back to 80 columns, which would cut job ids in files


def client_options(*, rpc_timeout_flags: tuple[str, ...] = ("--timeout", "--rpc-timeout"),
                   ) -> argparse.ArgumentParser:
    """A parent parser with the options of every command that talks to the cluster.

    Commands that describe a job use `--timeout` for the job's own timeout, so they get only
    `--rpc-timeout` for the call's deadline.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("cluster options")
    group.add_argument("--cluster", metavar="ADDR[,ADDR...]",
                       help="node addresses (default: $RAFTSCHED_CLUSTER, else the dev cluster)")
    group.add_argument("--json", action="store_true", help="print protobuf JSON, one object per line")
    group.add_argument(*rpc_timeout_flags, dest="rpc_timeout", metavar="DURATION",
                       help=f"give up after this long, retries included (default {DEFAULT_RPC_TIMEOUT_S:g}s)")
    group.add_argument("--tls-dir", metavar="DIR",
                       help="directory with ca.crt and client.crt/.key (admin.crt/.key for admin commands, "
                            "when present)")
    group.add_argument("--tls-cert", metavar="FILE")
    group.add_argument("--tls-key", metavar="FILE")
    group.add_argument("--tls-ca", metavar="FILE")
    group.add_argument("--token-file", metavar="FILE",
                       help="send the bearer token in FILE (default: $RAFTSCHED_TOKEN); needs TLS")
    return parent


def cluster_addresses(args: argparse.Namespace, env: dict[str, str] | None = None) -> tuple[str, ...]:
    environ = os.environ if env is None else env
    raw = getattr(args, "cluster", None) or environ.get("RAFTSCHED_CLUSTER") or DEFAULT_CLUSTER
    return parse_addresses(raw, "--cluster")


def client_tls(args: argparse.Namespace, *, admin: bool = False) -> TLSConfig:
    """The CLI's certificate: from --tls-dir, client.crt/.key, or admin.crt/.key for the admin
    commands (membership, leader transfer, snapshot save, executor drain) when the directory has
    them. Explicit --tls-cert/--tls-key win."""
    def pick(name: str) -> str:
        return str(getattr(args, name, None) or os.environ.get("RAFTSCHED_" + name.upper(), ""))

    tls_dir = pick("tls_dir")
    role = "admin" if admin and tls_dir and os.path.isfile(os.path.join(tls_dir, "admin.crt")) else "client"
    return resolve_tls(tls_dir=tls_dir, cert=pick("tls_cert"), key=pick("tls_key"), ca=pick("tls_ca"), role=role)


def client_token(args: argparse.Namespace) -> str:
    path = getattr(args, "token_file", None) or os.environ.get("RAFTSCHED_TOKEN_FILE", "")
    if not path:
        return os.environ.get("RAFTSCHED_TOKEN", "").strip()
    try:
        return read_token_file(path)
    except TokenError as e:
        raise UsageError(str(e)) from None


def make_client(args: argparse.Namespace, *, admin: bool = False, default_timeout: float | None = None) -> Client:
    """A client for the command; `admin`: an operator command (picks admin.crt, see client_tls).
    `default_timeout`: the deadline when none is given, for commands the server may rightly take
    long to answer (a membership change waits for the learner to catch up)."""
    raw_timeout = getattr(args, "rpc_timeout", None)
    fallback = default_timeout or DEFAULT_RPC_TIMEOUT_S
    timeout = parse_duration_s(raw_timeout, name="--timeout") if raw_timeout else fallback
    tls, token = client_tls(args, admin=admin), client_token(args)
    if token and not tls.enabled:
        raise UsageError("a bearer token needs TLS (--tls-dir or --tls-ca): it must not cross the network in clear")
    return Client(cluster_addresses(args), timeout=timeout, tls=tls, token=token)


class Printer:
    """Prints to stdout: JSON lines with --json, rich renderables otherwise."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(getattr(args, "json", False))
        tty = sys.stdout.isatty()
        self.console = Console(highlight=False, width=None if tty else _WIDTH_WITHOUT_TTY)

    def message(self, message: Message) -> None:
        print(to_json(message), flush=True)

    def messages(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self.message(message)

    def show(self, renderable: RenderableType) -> None:
        self.console.print(renderable)

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)


def lazy_attr(module: str, attr: str, what: str) -> Any:
    """module.attr, imported when needed; NotImplementedYet when that code does not exist yet.

    Why lazily: these commands start the heavy parts (the node, the executor, restore), and the
    rest of the CLI must work before or without them.
    """
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (e.name == module or module.startswith(e.name + ".")):
            raise NotImplementedYet(f"{what} is not implemented yet ({module} is missing)") from e
        raise
    try:
        return getattr(loaded, attr)
    except AttributeError:
        raise NotImplementedYet(f"{what} is not implemented yet ({module}.{attr} is missing)") from None


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)

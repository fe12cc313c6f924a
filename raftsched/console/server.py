"""`raftsched console`: serve the app with uvicorn until Ctrl-C or SIGTERM (uvicorn's own handlers
stop it gracefully: open event streams get GRACE_S, then are cut)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from .app import build_app
from .config import DOCS, ConsoleConfig
from .context import Console

log = logging.getLogger("raftsched.console")
GRACE_S = 2


class ConsoleServer(uvicorn.Server):
    """uvicorn's server, telling the console when a stop begins: open event streams (a job page
    following WatchJob) then end at once instead of holding the shutdown for the grace period."""

    def __init__(self, config: uvicorn.Config, console: Console) -> None:
        super().__init__(config)
        self.console = console

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # no loop yet: nothing to end
            asyncio.get_running_loop().call_soon_threadsafe(self.console.stop_streams)
        super().handle_exit(sig, frame)


def run_console(config: ConsoleConfig) -> int:
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _check_free(config)
    _warn_if_insecure(config)
    app = build_app(config)
    server = ConsoleServer(uvicorn.Config(
        app, host=config.host, port=config.port, log_level=config.log_level, access_log=False,
        lifespan="on", timeout_graceful_shutdown=GRACE_S, server_header=False, log_config=None,
        ssl_certfile=config.https_cert or None, ssl_keyfile=config.https_key or None), app.state.console)
    log.info("console for cluster %s at %s", ",".join(config.cluster), config.url)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(server.serve())
    return 0 if server.started else 1


def _check_free(config: ConsoleConfig) -> None:
    """One clear error before anything starts when the address is taken (uvicorn would log it
    among its start-up lines and exit 3)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.host, config.port))
        except OSError as e:
            raise OSError(e.errno, f"cannot serve the console on {config.listen}: {e.strerror}") from None


def _warn_if_insecure(config: ConsoleConfig) -> None:
    if not config.auth:
        log.warning("console: insecure mode (no TLS to the cluster): nobody signs in, and everyone who reaches "
                    "%s can read and change the cluster", config.url)
    if not config.loopback and not (config.auth and config.https):
        log.warning("!!! console: serving on %s WITHOUT TLS because of --insecure: anyone on the network can "
                    "read and change the cluster%s; see %s !!!", config.listen,
                    "" if config.https else " and sees tokens in clear", DOCS)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (the console starts no child processes, so none of the executor's
    reasons to avoid it apply)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop

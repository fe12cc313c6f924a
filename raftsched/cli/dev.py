"""`raftsched dev`: a whole cluster on this machine for trying raftsched out.

Three nodes on 127.0.0.1:7001-7003, two executors and the web console (http://127.0.0.1:8080/)
run as child processes, each in its own process group with its log under .raftsched/dev/logs/.
Demo jobs go in once per fresh data dir; then a live view shows the cluster until Ctrl-C or
SIGTERM, which stop every child (SIGTERM, up to 5 s, then SIGKILL). Data is kept between runs;
--fresh wipes it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from raftsched.cli.errors import CommandFailed
from raftsched.cli.output import job_counts_line, jobs_table, role_name, status_table
from raftsched.client import Client, ClientError
from raftsched.client.calls import JobFilter
from raftsched.v1 import admin_pb2, jobs_pb2, scheduler_pb2

NODES = {"n1": "127.0.0.1:7001", "n2": "127.0.0.1:7002", "n3": "127.0.0.1:7003"}
EXECUTORS = {"e1": 4, "e2": 4}
CLUSTER = ",".join(NODES.values())
CONSOLE = "127.0.0.1:8080"
STOP_GRACE_S = 5.0
LEADER_WAIT_S = 60.0
VIEW_REFRESH_S = 0.5
PLAIN_EVERY_S = 5.0
VIEW_JOBS = 12
# Settings that would turn a dev child into something else if inherited from the user's shell.
_CHILD_ENV_DROP = ("RAFTSCHED_ID", "RAFTSCHED_LISTEN", "RAFTSCHED_DATA_DIR", "RAFTSCHED_PEERS",
                   "RAFTSCHED_JOIN", "RAFTSCHED_CONFIG", "RAFTSCHED_CLUSTER", "RAFTSCHED_SLOTS")


def console_url(listen: str) -> str:
    return f"http://{listen}/"


class _Stop(Exception):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def exit_code(self) -> int | None:
        return self.process.poll()


@dataclass
class Supervisor:
    """Starts children in their own process groups and stops every one of them."""

    logs: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        path = self.logs / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
        with open(path, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "raftsched.cli.main", *argv], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        child = Child(name, process, path)
        self.children.append(child)
        return child

    def dead(self) -> list[Child]:
        return [c for c in self.children if c.exit_code() is not None]

    def stop_all(self, grace: float = STOP_GRACE_S) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(max(0.0, deadline - time.monotonic()))
        self._signal_all(signal.SIGKILL)  # whatever ignored SIGTERM within the grace period
        for child in self.children:
            child.process.wait()

    def _signal_all(self, sig: signal.Signals) -> None:
        for child in self.children:
            if child.exit_code() is None:
                # The whole group: a node or executor may have children of its own (tasks).
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.process.pid, sig)


def cmd_dev(args: argparse.Namespace) -> int:
    base = Path(args.dir)
    if args.fresh:
        shutil.rmtree(base, ignore_errors=True)
    _check_ports_free([*NODES.values(), args.console_listen])
    supervisor = Supervisor(base / "logs")
    with _stop_signals():
        try:
            _run(args, base, supervisor)
        except (KeyboardInterrupt, _Stop):
            pass
        finally:
            _stop_quietly(supervisor)
    return 0


def _run(args: argparse.Namespace, base: Path, supervisor: Supervisor) -> None:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    _start_children(supervisor, base, args.console_listen)
    console.print(f"started {len(NODES)} nodes, {len(EXECUTORS)} executors and the web console; logs in "
                  f"{base / 'logs'}", markup=False)
    console.print(f"web console: {console_url(args.console_listen)}", markup=False)
    with Client(list(NODES.values()), timeout=3.0) as client:
        leader = _wait_for_leader(client, supervisor)
        console.print(f"leader elected: {leader}", markup=False)
        if not args.no_demo:
            _submit_demo_once(client, base, console)
            _create_demo_schedule(client, console)
        if sys.stdout.isatty():
            _live_view(client, supervisor, console, console_url(args.console_listen))
        else:
            _plain_view(client, supervisor)


def _check_ports_free(addresses: list[str]) -> None:
    for address in addresses:
        host, port = address.rsplit(":", 1)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, int(port)))
            except OSError:
                raise CommandFailed(f"{address} is already in use (is another `raftsched dev` running?)") from None


def _start_children(supervisor: Supervisor, base: Path, console_listen: str) -> None:
    peers = ",".join(f"{n}={a}" for n, a in NODES.items())
    for name, address in NODES.items():
        supervisor.start(name, ["node", "--id", name, "--listen", address, "--data-dir", str(base / name),
                                "--peers", peers])
    for name, slots in EXECUTORS.items():
        supervisor.start(name, ["executor", "--cluster", CLUSTER, "--id", name, "--slots", str(slots)])
    supervisor.start("console", ["console", "--listen", console_listen, "--cluster", CLUSTER])


def _wait_for_leader(client: Client, supervisor: Supervisor) -> str:
    deadline = time.monotonic() + LEADER_WAIT_S
    while time.monotonic() < deadline:
        _fail_if_dead(supervisor, only_nodes=True)
        with contextlib.suppress(ClientError):
            status = client.status(timeout=2.0)
            leaders = [n.id for n in status.nodes if n.role == admin_pb2.ROLE_LEADER]
            if leaders:
                return leaders[0]
        time.sleep(0.2)
    raise CommandFailed(f"no leader within {LEADER_WAIT_S:.0f} s; see the logs in {supervisor.logs}")


def _fail_if_dead(supervisor: Supervisor, *, only_nodes: bool) -> None:
    for child in supervisor.dead():
        if not only_nodes or child.name in NODES:
            raise CommandFailed(f"{child.name} exited with code {child.exit_code()} during startup: "
                                f"{_last_line(child.log)} (log: {child.log})")


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1][-200:] if lines else "empty log"


# --- demo work -------------------------------------------------------------------------------


def demo_specs() -> list[tuple[str, jobs_pb2.JobSpec]]:
    """The demo jobs besides the a -> b -> c chain, each with the key suffix that dedupes it."""
    fail = jobs_pb2.JobSpec(name="retries-then-fails", handler="fail", max_attempts=3,
                            backoff=jobs_pb2.RetryBackoff(initial_ms=500))
    specs = [("fail", fail)]
    for ms in (2000, 3000, 4000):
        specs.append((f"sleep-{ms}", jobs_pb2.JobSpec(name=f"sleep {ms} ms", handler="sleep",
                                                     payload=str(ms).encode())))
    command = jobs_pb2.JobSpec(name="hello-command", command=["sh", "-c", "echo hello from $RAFTSCHED_JOB_ID"])
    specs.append(("command", command))
    return specs


def _submit_demo_once(client: Client, base: Path, console: Console) -> None:
    """Submit the demo jobs unless this data dir already has them (keys make a repeat harmless)."""
    marker = base / "demo-submitted"
    if marker.exists():
        return
    chain: dict[str, str] = {}
    previous: list[str] = []
    for step in ("a", "b", "c"):
        spec = jobs_pb2.JobSpec(name=f"chain-{step}", handler="echo", payload=f"step {step}".encode(),
                                depends_on=previous, idempotency_key=f"dev-demo-chain-{step}")
        chain[step] = client.submit_job(spec).job.id
        previous = [chain[step]]
    for key, spec in demo_specs():
        spec.idempotency_key = f"dev-demo-{key}"
        client.submit_job(spec)
    marker.write_text("demo jobs submitted\n")
    console.print("submitted demo jobs: a chain a -> b -> c, a failing job with retries, sleeps, a command",
                  markup=False)


DEMO_SCHEDULE = "demo-every-10s"


def _create_demo_schedule(client: Client, console: Console) -> None:
    """One recurring schedule, so the view shows schedule-made jobs; a repeat finds it exists."""
    spec = scheduler_pb2.ScheduleSpec(name=DEMO_SCHEDULE, every_ms=10_000,
                                      template=jobs_pb2.JobSpec(name=DEMO_SCHEDULE, handler="noop"))
    try:
        client.create_schedule(spec)
    except ClientError as e:
        if e.code != "ALREADY_EXISTS":
            raise
        return
    console.print(f"created schedule {DEMO_SCHEDULE} (noop every 10 s): raftsched schedule get {DEMO_SCHEDULE}",
                  markup=False)


# --- the view --------------------------------------------------------------------------------


@dataclass
class Snapshot:
    status: admin_pb2.StatusResponse | None = None
    jobs: list[jobs_pb2.Job] = field(default_factory=list)
    error: str = ""


def _poll(client: Client) -> Snapshot:
    snap = Snapshot()
    try:
        snap.status = client.status(timeout=1.5)
        # Stale: the view must keep drawing while the cluster has no leader.
        snap.jobs = list(client.list_jobs(page_size=VIEW_JOBS, stale=True, timeout=1.5,
                                          where=JobFilter(newest_first=True)).jobs)
    except ClientError as e:
        snap.error = f"{e.code}: {e.message}"
    return snap


def render(snap: Snapshot, supervisor: Supervisor, console_link: str = console_url(CONSOLE)) -> RenderableType:
    parts: list[RenderableType] = []
    if snap.status is not None:
        parts.append(status_table(snap.status))
    if snap.error:
        parts.append(Text(f"cluster: {snap.error}", style="red"))
    parts.append(jobs_table(snap.jobs, title=f"jobs (latest {len(snap.jobs)}): " + state_counts(snap)))
    parts.append(Text(children_line(supervisor)))
    parts.append(Text(f"Web console: {console_link} | In another terminal: raftsched status | raftsched job list | "
                      "raftsched job submit --handler sleep --payload 1000 | "
                      f"raftsched schedule get {DEMO_SCHEDULE} | Ctrl-C here stops all",
                      style="dim"))
    return Group(*parts)


def state_counts(snap: Snapshot) -> str:
    """Exact counts by state, from the leader (kept by apply: not a count of a listing)."""
    line = job_counts_line(snap.status) if snap.status is not None else ""
    return line.split(": ", 1)[1] if line else "no leader"


def children_line(supervisor: Supervisor) -> str:
    dead = supervisor.dead()
    if not dead:
        return f"processes: all {len(supervisor.children)} running"
    gone = ", ".join(f"{c.name} exited ({c.exit_code()}, see {c.log})" for c in dead)
    return f"processes: {gone}"


def plain_line(snap: Snapshot, supervisor: Supervisor) -> str:
    nodes = snap.status.nodes if snap.status is not None else []
    leader = next((n for n in nodes if n.role == admin_pb2.ROLE_LEADER), None)
    cluster = (f"leader={leader.id} term={leader.term} commit={leader.commit_index}" if leader
               else "leader=none " + " ".join(f"{n.id}:{role_name(n.role)}" for n in nodes))
    error = f" error={snap.error}" if snap.error else ""
    return f"{time.strftime('%H:%M:%S')} {cluster} | jobs {state_counts(snap)} | " \
           f"{children_line(supervisor)}{error}"


def _live_view(client: Client, supervisor: Supervisor, console: Console, console_link: str) -> None:
    with Live(render(_poll(client), supervisor, console_link), console=console, refresh_per_second=2) as live:
        while True:
            time.sleep(VIEW_REFRESH_S)
            live.update(render(_poll(client), supervisor, console_link))


def _plain_view(client: Client, supervisor: Supervisor, out: IO[str] | None = None) -> None:
    stream = out or sys.stdout
    while True:
        print(plain_line(_poll(client), supervisor), file=stream, flush=True)
        time.sleep(PLAIN_EVERY_S)


# --- signals ---------------------------------------------------------------------------------


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the dev cluster like Ctrl-C (which raises KeyboardInterrupt)."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # Why: a parent that started us in the background may have left SIGINT ignored.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_quietly(supervisor: Supervisor) -> None:
    """Stop every child; a second Ctrl-C or SIGTERM must not cut the shutdown short."""
    ignored = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        if supervisor.children:
            print(f"stopping {len(supervisor.children)} processes...", file=sys.stderr, flush=True)
        supervisor.stop_all()
    finally:
        for sig, handler in ignored.items():
            signal.signal(sig, handler)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("dev", help="a local 3-node cluster with 2 executors and demo jobs",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="wipe the dev data first")
    parser.add_argument("--dir", default=os.path.join(".raftsched", "dev"), metavar="DIR",
                        help="where data and logs live (default .raftsched/dev)")
    parser.add_argument("--no-demo", action="store_true", help="do not submit the demo jobs")
    parser.add_argument("--console-listen", default=CONSOLE, metavar="HOST:PORT",
                        help=f"where the web console serves (default {CONSOLE}; loopback only without TLS)")
    parser.set_defaults(handler_fn=cmd_dev)

"""A real raftsched cluster for integration tests: `raftsched node` and `raftsched executor`
processes on 127.0.0.1, driven from outside through the project's own client and CLI.

Every process is started in its own session and tracked by PID; `Cluster.close()` kills each
process group with SIGKILL and reaps it, also when the test failed. Node and executor logs go to
files under the test's tmp directory (`Cluster.logs()` shows their tails when a test fails).

Timing: `FAST` shortens the Raft timers (heartbeat 50 ms, election 500 ms) to keep the suite quick;
`DEFAULT` passes no timing flags, for the tests of the SPEC's bounds on default timings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from raftsched.client import Client, ClientError
from raftsched.testing.procs import Proc, free_port_range
from raftsched.v1 import admin_pb2, jobs_pb2

T = TypeVar("T")

# RAFTSCHED_BIN runs the suite against another build (for example a checkout of an older commit).
BIN = Path(os.environ.get("RAFTSCHED_BIN") or Path(sys.executable).parent / "raftsched")
FAST: tuple[str, ...] = ("--heartbeat-ms", "50", "--election-ms", "500")
DEFAULT: tuple[str, ...] = ()
STATUS_TIMEOUT_S = 1.0  # one node's local status; a paused or dead node does not answer


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_for(condition: Callable[[], T | None], timeout: float, what: str = "condition",
             interval: float = 0.05) -> T:
    """Poll `condition` until it returns a truthy value, and return that value.

    Exceptions from `condition` (a node not answering yet) count as "not yet"; the last one is
    shown when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (ClientError, OSError) as err:
            last_error = err
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise WaitTimeout(f"{what}: not within {timeout:.1f} s{detail}")
        time.sleep(interval)


@dataclass
class Cluster:
    """N scheduler nodes (n1..nN) and any number of executors, all real processes."""

    root: Path
    size: int = 3
    timing: Sequence[str] = FAST
    node_flags: Sequence[str] = ()
    ids: list[str] = field(init=False)
    addr: dict[str, str] = field(init=False)
    nodes: dict[str, Proc] = field(init=False, default_factory=dict)
    executors: dict[str, Proc] = field(init=False, default_factory=dict)
    _all: list[Proc] = field(init=False, default_factory=list)
    _clients: list[Client] = field(init=False, default_factory=list)
    _stopped: set[str] = field(init=False, default_factory=set)
    _per_node: dict[str, Client] = field(init=False, default_factory=dict)
    _pgids: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ids = [f"n{i + 1}" for i in range(self.size)]
        ports = free_port_range(self.size)
        self.addr = {nid: f"127.0.0.1:{port}" for nid, port in zip(self.ids, ports, strict=True)}

    # --- addresses ---

    @property
    def peers(self) -> str:
        return ",".join(f"{nid}={a}" for nid, a in self.addr.items())

    @property
    def cluster(self) -> str:
        """Every node's address, comma-separated (for --cluster)."""
        return ",".join(self.addr.values())

    def data_dir(self, nid: str) -> Path:
        return self.root / f"data-{nid}"

    # --- processes ---

    def _spawn(self, name: str, args: list[str]) -> Proc:
        proc = Proc(name, [str(BIN), *args], self.root / f"{name}.log").start()
        self._all.append(proc)
        return proc

    def start(self, nid: str) -> None:
        """Start (or restart, from the same data directory) node `nid`."""
        assert nid not in self.nodes or not self.nodes[nid].alive(), f"{nid} is already running"
        args = ["node", "--id", nid, "--listen", self.addr[nid], "--data-dir", str(self.data_dir(nid)),
                "--peers", self.peers, *self.timing, *self.node_flags]
        self.nodes[nid] = self._spawn(nid, args)
        self._stopped.discard(nid)

    def start_all(self) -> None:
        for nid in self.ids:
            self.start(nid)

    def kill(self, nid: str) -> None:
        """SIGKILL node `nid` (its whole process group) and reap it."""
        self.nodes[nid].kill9()

    def restart(self, nid: str) -> None:
        self.kill(nid)
        self.start(nid)

    def pause(self, nid: str) -> None:
        os.killpg(self.nodes[nid].pid, signal.SIGSTOP)
        self._stopped.add(nid)

    def resume(self, nid: str) -> None:
        os.killpg(self.nodes[nid].pid, signal.SIGCONT)
        self._stopped.discard(nid)

    def start_executor(self, eid: str, slots: int = 4, *extra: str) -> Proc:
        args = ["executor", "--cluster", self.cluster, "--id", eid, "--slots", str(slots), *extra]
        self.executors[eid] = self._spawn(eid, args)
        return self.executors[eid]

    def kill_executor(self, eid: str) -> None:
        self.executors[eid].kill9()

    def live(self) -> list[str]:
        """Nodes whose process runs and is not paused."""
        return [nid for nid in self.ids
                if nid in self.nodes and self.nodes[nid].alive() and nid not in self._stopped]

    def close(self) -> None:
        """Kill every process this cluster started and close every client; never raises."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        for proc in self._all:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGCONT)  # a stopped group still dies of SIGKILL, but be plain
        for proc in self._all:
            proc.kill9()
        for pgid in self._pgids:  # task process groups the tests learnt of (tasks run in their own session)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)

    def track_pgid(self, pgid: int) -> None:
        """Kill this process group at teardown too (a task's; executors start them in new sessions)."""
        self._pgids.add(pgid)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def logs(self, tail: int = 40) -> str:
        """The last `tail` lines of every process log, for a failed test's report."""
        parts = []
        for proc in self._all:
            if not proc.log.exists():
                continue
            lines = proc.log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"----- {proc.name} (pid {proc.popen.pid if proc.popen else '?'}) {proc.log}\n"
                         + "\n".join(lines))
        return "\n".join(dict.fromkeys(parts))

    # --- clients ---

    def client(self, *nids: str, timeout: float = 10.0) -> Client:
        """A project Client over the given nodes (default: all); closed with the cluster."""
        addresses = [self.addr[n] for n in (nids or self.ids)]
        client = Client(addresses, timeout=timeout)
        self._clients.append(client)
        return client

    def local_status(self, nid: str) -> admin_pb2.NodeStatus:
        """Node `nid`'s own view (Admin.Status local_only), asked of that node alone."""
        client = self._status_clients().get(nid)
        assert client is not None
        return client.status(local_only=True, timeout=STATUS_TIMEOUT_S).nodes[0]

    def _status_clients(self) -> dict[str, Client]:
        if not self._per_node:
            self._per_node = {nid: self.client(nid, timeout=STATUS_TIMEOUT_S) for nid in self.ids}
        return self._per_node

    def statuses(self, among: Sequence[str] | None = None) -> dict[str, admin_pb2.NodeStatus]:
        """Local status of each reachable node among `among` (default: the live ones)."""
        out = {}
        for nid in among or self.live():
            with contextlib.suppress(ClientError):
                out[nid] = self.local_status(nid)
        return out

    def leader(self, among: Sequence[str] | None = None) -> str | None:
        """The leader every node among `among` (default: the live ones) agrees on, else None.

        Agreement: every one of them answers, exactly one says it leads, and all name it as
        leader in the same term.
        """
        among = list(among or self.live())
        st = self.statuses(among)
        if len(st) != len(among):
            return None
        leaders = [nid for nid, s in st.items() if s.role == admin_pb2.ROLE_LEADER]
        if len(leaders) != 1:
            return None
        views = {(s.leader, s.term) for s in st.values()}
        if len(views) != 1:
            return None
        return leaders[0]

    def wait_leader(self, timeout: float = 20.0, among: Sequence[str] | None = None) -> str:
        return wait_for(lambda: self.leader(among), timeout, "one leader agreed on by all live nodes")

    def wait_caught_up(self, nid: str, timeout: float = 20.0, among: Sequence[str] | None = None) -> None:
        """Wait until `nid` applied everything the leader has committed (at the time of asking)."""

        def caught_up() -> bool:
            ldr = self.leader(among)
            if ldr is None:
                return False
            target = self.local_status(ldr).commit_index
            return target > 0 and self.local_status(nid).applied_index >= target

        wait_for(caught_up, timeout, f"{nid} applies up to the leader's commit index")

    # --- jobs ---

    def submit(self, client: Client | None = None, **spec: object) -> jobs_pb2.Job:
        """Submit a job spec given as JobSpec fields; returns the job the cluster answered."""
        return (client or self.client()).submit_job(jobs_pb2.JobSpec(**spec)).job  # type: ignore[arg-type]

    def get(self, job_id: str, client: Client | None = None) -> jobs_pb2.Job:
        return (client or self.client()).get_job(job_id)

    def wait_state(self, job_id: str, states: int | set[int], timeout: float = 30.0,
                   client: Client | None = None) -> jobs_pb2.Job:
        wanted = {states} if isinstance(states, int) else states
        c = client or self.client()
        return wait_for(lambda: _if(c.get_job(job_id), lambda j: j.state in wanted), timeout,
                        f"job {job_id} reaches {sorted(jobs_pb2.JobState.Name(s) for s in wanted)}", 0.1)

    def wait_executors(self, *eids: str, timeout: float = 20.0) -> None:
        """Wait until the leader sees each executor connected."""
        c = self.client()

        def connected() -> bool:
            views = {e.id: e for e in c.list_executors().executors}
            return all(e in views and views[e].state == jobs_pb2.EXECUTOR_STATE_CONNECTED for e in eids)

        wait_for(connected, timeout, f"executors {eids} connected", 0.1)


def _if(value: T, pred: Callable[[T], bool]) -> T | None:
    return value if pred(value) else None


def state_name(job: jobs_pb2.Job) -> str:
    return jobs_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")


def run_cli(*args: str, cluster: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run `raftsched ARGS...` against `cluster`, capturing its output."""
    env = dict(os.environ, RAFTSCHED_CLUSTER=cluster)
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, check=False)

"""A real cluster whose executors reach the nodes only through fault-injecting proxies.

Three `raftsched node` processes and any number of `raftsched executor` processes on 127.0.0.1.
Every node-to-node link and every executor-to-node link goes through the chaos harness's proxy
(jepsen-style/proxy.py, one helper process): an executor that follows a leader hint is sent to a
node's *peer* address, which is a proxy too, and the proxy matches that connection to the
executor's registered pid, so cutting an executor's links cuts it off wherever it connects.
The test process and the tasks' own clients (fenced_sink) talk to the nodes directly.

Every process started here, and every task or guard an executor starts (they inherit the
environment), carries LEASES_RUN=<run id>; `close()` SIGKILLs the process groups it started and
then every process still carrying the marker, so no task outlives its test.

Tasks append `JOB ATTEMPT EXECUTOR WALL_NS` lines to a ledger every 100 ms (`ledger_task`);
`Ledger` parses it into per-attempt intervals.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from raftsched import procmark
from raftsched.client import Client, ClientError
from raftsched.testing.procs import Proc, free_port_range
from raftsched.v1 import admin_pb2, jobs_pb2

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "raftsched"
PROXY_SCRIPT = REPO / "jepsen-style" / "proxy.py"
FENCED_SINK = REPO / "examples" / "fenced_sink.py"
FAST: tuple[str, ...] = ("--heartbeat-ms", "50", "--election-ms", "500")  # Raft timers only

# The defaults these tests are about (node: executor timeout, lease; executor: heartbeat, kill grace).
EXECUTOR_TIMEOUT_S = 5.0
LEASE_S = 3.0
KILL_GRACE_S = 1.0
EXECUTOR_HEARTBEAT_S = 1.0



class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy and return it; errors count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (ClientError, OSError, subprocess.SubprocessError) as err:
            last_error = err
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise WaitTimeout(f"{what}: not within {timeout:.1f} s{detail}")
        time.sleep(interval)


def end_name(attempt: jobs_pb2.Attempt) -> str:
    return jobs_pb2.AttemptEnd.Name(attempt.end).removeprefix("ATTEMPT_END_")


def state_name(job: jobs_pb2.Job) -> str:
    return jobs_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")


# --- the proxy -------------------------------------------------------------------------------


class Proxy:
    """Synchronous handle on one jepsen-style/proxy.py process (JSON lines over its stdin/stdout)."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self._log = open(log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen([sys.executable, str(PROXY_SCRIPT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, env=env,
                                     start_new_session=True)

    def call(self, op: str, **kw: object) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 20.0)
        if not ready:
            raise RuntimeError(f"proxy did not answer {op} within 20 s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the proxy process exited")
        answer: dict[str, object] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"proxy {op} failed: {answer.get('error')}")
        return answer

    def listen(self, src: str, dst: str, target: int) -> int:
        return int(self.call("listen", name=f"{src}->{dst}", src=src, dst=dst, target=target)["port"])  # type: ignore[arg-type]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._log.close()


# --- processes -------------------------------------------------------------------------------


@dataclass
class LeaseCluster:
    """Nodes n1..n3 (FAST Raft timers, default executor timeout and lease) and executors behind proxies."""

    root: Path
    executor_ids: Sequence[str] = ("e1", "e2")
    size: int = 3
    node_flags: Sequence[str] = FAST
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    addr: dict[str, str] = field(init=False, default_factory=dict)
    nodes: dict[str, Proc] = field(init=False, default_factory=dict)
    executors: dict[str, Proc] = field(init=False, default_factory=dict)
    _procs: list[Proc] = field(init=False, default_factory=list)
    _peer_views: dict[str, dict[str, str]] = field(init=False, default_factory=dict)
    _executor_links: dict[str, list[str]] = field(init=False, default_factory=dict)
    _clients: list[Client] = field(init=False, default_factory=list)
    _dead_nodes: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ids = [f"n{i + 1}" for i in range(self.size)]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTSCHED_")}
        self.env.update(LEASES_RUN=self.run_id, PYTHONUNBUFFERED="1")
        self.proxy = Proxy(self.root / "proxy.log", self.env)
        try:
            ports = dict(zip(self.ids, free_port_range(len(self.ids)), strict=True))  # below the ephemeral range
            self.addr = {nid: f"127.0.0.1:{p}" for nid, p in ports.items()}
            for src in self.ids:
                view = {dst: f"127.0.0.1:{self.proxy.listen(src, dst, ports[dst])}" for dst in self.ids if dst != src}
                view[src] = self.addr[src]
                self._peer_views[src] = view
            for eid in self.executor_ids:
                self._executor_links[eid] = [f"127.0.0.1:{self.proxy.listen(eid, dst, ports[dst])}"
                                             for dst in self.ids]
        except BaseException:
            self.close()
            raise

    # --- processes ---

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, [str(BIN), *args], self.root / f"{name}.log", env=env).start()
        self._procs.append(proc)
        return proc

    def start_nodes(self) -> None:
        for nid in self.ids:
            peers = ",".join(f"{k}={v}" for k, v in sorted(self._peer_views[nid].items()))
            self.nodes[nid] = self._spawn(nid, ["node", "--id", nid, "--listen", self.addr[nid], "--data-dir",
                                                str(self.root / f"data-{nid}"), "--peers", peers,
                                                *self.node_flags], self.env)

    def start_executor(self, eid: str, slots: int = 4, *extra: str) -> Proc:
        """Start executor `eid` (label ex=<eid>) reaching the nodes only through its proxies."""
        env = dict(self.env, LEASES_EXECUTOR=eid)
        proc = self._spawn(eid, ["executor", "--cluster", ",".join(self._executor_links[eid]), "--id", eid,
                                 "--slots", str(slots), "--label", f"ex={eid}", *extra], env)
        self.proxy.call("register", pid=proc.pid, label=eid)
        self.executors[eid] = proc
        return proc

    def cut(self, eid: str, mode: str) -> None:
        """Cut executor `eid` off from every node: 'blackhole' or 'drop'; 'pass' heals."""
        self.proxy.call("set", links=[[eid, nid] for nid in self.ids], mode=mode)

    def heal(self, eid: str) -> None:
        self.cut(eid, "pass")

    def pause_executor(self, eid: str) -> None:
        """SIGSTOP the executor process alone: its tasks and their guards run in sessions of their own."""
        os.kill(self.executors[eid].pid, signal.SIGSTOP)

    def resume_executor(self, eid: str) -> None:
        os.kill(self.executors[eid].pid, signal.SIGCONT)

    def kill_node(self, nid: str) -> None:
        proc = self.nodes[nid]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)
        self._dead_nodes.add(nid)

    # --- clients and status ---

    def client(self, timeout: float = 10.0) -> Client:
        c = Client([self.addr[n] for n in self.ids if n not in self._dead_nodes], timeout=timeout)
        self._clients.append(c)
        return c

    def leader(self) -> str | None:
        """The node that says it leads, when every live node answers and names it, in one term."""
        live = [n for n in self.ids if n not in self._dead_nodes]
        for nid in live:
            if not self.nodes[nid].alive():  # fail now, not at the deadline: it will not come back
                tail = "\n".join(self.log_text(nid).splitlines()[-5:])
                raise AssertionError(f"node {nid} exited with {self.nodes[nid].popen.returncode}:\n{tail}")
        views = {}
        for nid in live:
            with Client([self.addr[nid]], timeout=1.0) as c:
                try:
                    views[nid] = c.status(local_only=True, timeout=1.0).nodes[0]
                except ClientError:
                    return None
        leaders = [n for n, s in views.items() if s.role == admin_pb2.ROLE_LEADER]
        if len(leaders) != 1 or len({(s.leader, s.term) for s in views.values()}) != 1:
            return None
        return leaders[0]

    def wait_leader(self, timeout: float = 40.0) -> str:
        return wait_for(self.leader, timeout, "one leader agreed on by every live node", 0.2)

    def executor_views(self, client: Client) -> dict[str, jobs_pb2.ExecutorInfo]:
        return {e.id: e for e in client.list_executors().executors}

    def wait_executors(self, client: Client, *eids: str, timeout: float = 40.0) -> None:
        def connected() -> bool:
            views = self.executor_views(client)
            return all(e in views and views[e].state == jobs_pb2.EXECUTOR_STATE_CONNECTED for e in eids)

        wait_for(connected, timeout, f"executors {eids} CONNECTED", 0.2)

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        live = [self.addr[n] for n in self.ids if n not in self._dead_nodes]
        env = dict(self.env, RAFTSCHED_CLUSTER=",".join(live))
        return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL, check=False)

    @property
    def cluster_addresses(self) -> str:
        return ",".join(self.addr[n] for n in self.ids)

    # --- teardown and logs ---

    def close(self) -> None:
        """Kill everything this cluster started, tasks and guards included; never raises."""
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(10)
        with contextlib.suppress(Exception):
            self.proxy.close()
        for _ in range(3):  # a task's shell may fork a `date` while we sweep: sweep until empty
            if not kill_marked(self.run_id):
                break
            time.sleep(0.05)

    def __enter__(self) -> LeaseCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def logs(self, tail: int = 60) -> str:
        parts = []
        for proc in self._procs:
            if proc.log.exists():
                lines = proc.log.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"----- {proc.name} (pid {proc.pid}) {proc.log}\n" + "\n".join(lines))
        return "\n".join(parts)

    def log_text(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")


def kill_marked(run_id: str) -> int:
    """SIGKILL every process carrying LEASES_RUN=<run_id> (tasks and guards live in their own sessions)."""
    return procmark.kill_marked("LEASES_RUN", run_id)


def started_cluster(root: Path, executors: dict[str, int], node_flags: Sequence[str] = FAST) -> LeaseCluster:
    """A cluster with a leader and the given executors (id -> slots) CONNECTED."""
    c = LeaseCluster(root, executor_ids=tuple(executors), node_flags=tuple(node_flags))
    try:
        c.start_nodes()
        c.wait_leader()
        for eid, slots in executors.items():
            c.start_executor(eid, slots)
        if executors:
            c.wait_executors(c.client(), *executors)
    except BaseException:
        print(c.logs())
        c.close()
        raise
    return c


# --- tasks and the ledger --------------------------------------------------------------------


def ledger_task(ledger: Path, iterations: int, sink: Path | None = None, cluster: str = "") -> list[str]:
    """argv of a task appending `JOB ATTEMPT EXECUTOR WALL_NS` to `ledger` every 100 ms, `iterations`
    times; with `sink`, it then writes `attempt-N` to the fenced sink under its fencing token."""
    line = '"$RAFTSCHED_JOB_ID $RAFTSCHED_ATTEMPT $LEASES_EXECUTOR $(date +%s%N)"'
    script = (f'i=0; while [ $i -lt {iterations} ]; do echo {line} >> {shlex.quote(str(ledger))}; '
              f'i=$((i+1)); sleep 0.1; done')
    if sink is not None:
        script += (f'; exec {shlex.quote(sys.executable)} {shlex.quote(str(FENCED_SINK))} --cluster {cluster} '
                   f'--token "$RAFTSCHED_FENCING_TOKEN" --value "attempt-$RAFTSCHED_ATTEMPT" '
                   f'--store {shlex.quote(str(sink))}')
    return ["sh", "-c", script]


def submit_ledger_job(client: Client, argv: list[str], **spec: object) -> str:
    job = client.submit_job(jobs_pb2.JobSpec(command=argv, max_attempts=5, timeout_ms=120_000, **spec)).job  # type: ignore[arg-type]
    return job.id


@dataclass
class Interval:
    executor: str
    first_ns: int
    last_ns: int
    lines: int


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def read(self) -> dict[str, dict[int, Interval]]:
        """job -> attempt -> its interval; a malformed line fails the test (env not set?)."""
        out: dict[str, dict[int, Interval]] = {}
        lines = self.path.read_text().splitlines()
        for n, line in enumerate(lines):
            parts = line.split()
            if len(parts) != 4 or not parts[1].isdigit() or not parts[3].isdigit():
                if n == len(lines) - 1 and not self.path.read_text().endswith("\n"):
                    continue  # the last line, still being written
                raise AssertionError(f"malformed ledger line {line!r} (RAFTSCHED_ATTEMPT unset?)")
            job, attempt, executor, ns = parts[0], int(parts[1]), parts[2], int(parts[3])
            iv = out.setdefault(job, {}).get(attempt)
            if iv is None:
                out[job][attempt] = Interval(executor, ns, ns, 1)
            else:
                assert iv.executor == executor, f"{job}/{attempt} wrote from {iv.executor} and {executor}"
                iv.first_ns, iv.last_ns, iv.lines = min(iv.first_ns, ns), max(iv.last_ns, ns), iv.lines + 1
        return out

    def lines_of(self, job: str) -> int:
        return sum(iv.lines for iv in self.read().get(job, {}).values())

    def has_attempt(self, job: str, attempt: int) -> bool:
        return attempt in self.read().get(job, {})

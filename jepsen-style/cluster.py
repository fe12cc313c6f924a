"""The cluster under test: node and executor processes, the proxies between them, and status.

Every process the harness starts runs in its own session (process group) and carries
JEPSEN_RUN=<run id> in its environment; tasks the executors start inherit it, so stop_all() can
find and end every process of this run, and only those, even orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf.json_format import MessageToDict
from proxy import ProxyControl

from raftsched.procmark import kill_marked
from raftsched.testing.procs import HOST, Proc, free_port_range
from raftsched.v1 import admin_pb2, admin_pb2_grpc

RAFTSCHED = str(Path(sys.executable).with_name("raftsched"))
STATUS_TIMEOUT = 1.0
ANY_SOURCE = "*"  # the source label of a shared proxy: the caller's registered process decides
# Debian's libfaketime (scripts/install-chaos-deps.sh). The multi-threaded variant: nodes run
# RocksDB and gRPC threads.
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
# On PYTHONPATH of every faked process: libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1
# fails clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) with EINVAL, which is time.sleep().
FAKETIME_SHIM = Path(__file__).resolve().parent / "faketime"


def faketime_env(offset_file: Path) -> dict[str, str]:
    """The environment that puts a process's wall clock under `offset_file` (libfaketime's
    timestamp file, read on every call: "+0", "+600", "-30", "+0 x1.2"). CLOCK_MONOTONIC is
    left alone, as an NTP step leaves it."""
    if not Path(LIBFAKETIME).exists():
        raise FileNotFoundError(f"{LIBFAKETIME} is missing: the clock nemesis needs Debian's libfaketime "
                                "(run scripts/install-chaos-deps.sh as root)")
    offset_file.parent.mkdir(parents=True, exist_ok=True)
    if not offset_file.exists():
        offset_file.write_text("+0\n")
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(offset_file), "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@dataclass
class Node:
    id: str
    port: int
    proc: Proc
    peers: dict[str, str] = field(default_factory=dict)  # this node's view: peers via proxies

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass
class Executor:
    id: str
    proc: Proc
    cluster: list[str] = field(default_factory=list)  # its proxies, one per node


class Cluster:
    """Nodes n1..nN and executors e1..eM on 127.0.0.1, every link through a proxy."""

    def __init__(self, run_dir: Path, run_id: str, n_nodes: int, n_executors: int, slots: int = 4,
                 faketime: bool = False, node_args: list[str] | None = None) -> None:
        self.run_dir, self.run_id = run_dir, run_id
        self.node_args = list(node_args or [])  # extra `raftsched node` flags for every node
        self.faketime = faketime  # some processes' wall clocks under their own offset files (clock nemesis)
        self.node_ids = [f"n{i + 1}" for i in range(n_nodes)]
        self.executor_ids = [f"e{i + 1}" for i in range(n_executors)]
        self.slots = slots
        self.nodes: dict[str, Node] = {}
        self.executors: dict[str, Executor] = {}
        self.proxy: ProxyControl | None = None
        self.proxy_to_node: dict[str, str] = {}  # proxy address -> the real address it forwards to
        self.links: dict[str, int] = {}  # "src->dst" -> proxy port
        # dst -> a proxy any node may dial to reach dst; the proxy tells the caller by its process
        # (registered below), so partitions still cut a node re-added at this address
        self.shared: dict[str, str] = {}
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.code_dir: Path | None = None

    # --- start -----------------------------------------------------------------------------

    def _env(self, name: str = "", **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAFTSCHED_", "FAKETIME"))}
        env.update(JEPSEN_RUN=self.run_id, PYTHONUNBUFFERED="1", **extra)
        path = [str(self.code_dir)] if self.code_dir is not None else []
        if name in self.faked:
            env.update(faketime_env(self.clock_file(name)))
            path.append(str(FAKETIME_SHIM))
        if path:
            env["PYTHONPATH"] = os.pathsep.join(path)
        return env

    @property
    def faked(self) -> list[str]:
        """The processes that run under libfaketime: n1, n2 (a minority of 5, 1 of 3) and e1.
        Not all of them: under libfaketime 0.9.10 a node's operations were seen to take about a
        second (not so for one process alone), so the clock nemesis works on a chosen few."""
        if not self.faketime:
            return []
        return self.node_ids[: max(1, (len(self.node_ids) - 1) // 2)] + self.executor_ids[:1]

    def clock_file(self, name: str) -> Path:
        """The libfaketime offset file of process `name` (a node or an executor id)."""
        return self.run_dir / "clock" / f"{name}.faketime"

    def snapshot_code(self) -> Path:
        """Copy the raftsched package into the run, and run every process from that copy: a
        process restarted mid-run then runs the same code as at the start, even while the
        working tree is being edited."""
        import raftsched

        src = Path(raftsched.__file__).resolve().parent
        self.code_dir = self.run_dir / "code"
        shutil.copytree(src, self.code_dir / "raftsched", ignore=shutil.ignore_patterns("__pycache__"))
        return src

    async def start(self) -> None:
        self.proxy = await ProxyControl.spawn(str(self.run_dir / "logs" / "proxy.log"))
        # below the ephemeral range: a proxy's or client's socket must not take a node's port first
        ports = dict(zip(self.node_ids, free_port_range(len(self.node_ids)), strict=True))
        for nid in self.node_ids:
            self.nodes[nid] = Node(nid, ports[nid], proc=None)  # type: ignore[arg-type]
        for src in self.node_ids:
            for dst in self.node_ids:
                if src != dst:
                    self.nodes[src].peers[dst] = await self._link(src, dst)
            self.nodes[src].peers[src] = self.nodes[src].address
            self.shared[src] = await self._link(ANY_SOURCE, src)
        for eid in self.executor_ids:
            cluster = [await self._link(eid, dst) for dst in self.node_ids]
            self.executors[eid] = Executor(eid, proc=None, cluster=cluster)  # type: ignore[arg-type]
        for node in self.nodes.values():
            node.proc = self._node_proc(node)
            await self.start_node(node.id)
        for ex in self.executors.values():
            ex.proc = self._executor_proc(ex)
            await self.start_executor(ex.id)

    async def _link(self, src: str, dst: str) -> str:
        assert self.proxy is not None
        target = self.nodes[dst].port
        port = await self.proxy.listen(f"{src}->{dst}", src, dst, target)
        self.links[f"{src}->{dst}"] = port
        self.proxy_to_node[f"{HOST}:{port}"] = self.nodes[dst].address
        return f"{HOST}:{port}"

    def _node_proc(self, node: Node) -> Proc:
        peers = ",".join(f"{k}={v}" for k, v in sorted(node.peers.items()))
        data = self.run_dir / "data" / node.id
        data.parent.mkdir(parents=True, exist_ok=True)
        argv = [RAFTSCHED, "node", "--id", node.id, "--listen", node.address, "--data-dir", str(data),
                "--peers", peers, "--advertise", self.shared[node.id], *self.node_args]
        log = self.run_dir / "logs" / f"{node.id}.log"
        return Proc(node.id, argv, log, env=self._env(node.id), cwd=log.parent)

    def _executor_proc(self, ex: Executor) -> Proc:
        argv = [RAFTSCHED, "executor", "--cluster", ",".join(ex.cluster), "--id", ex.id,
                "--slots", str(self.slots)]
        log = self.run_dir / "logs" / f"{ex.id}.log"
        return Proc(ex.id, argv, log, env=self._env(ex.id, JEPSEN_EXECUTOR_ID=ex.id), cwd=log.parent)

    async def start_node(self, nid: str) -> None:
        """(Re)start a node and tell the proxies which process it is: a connection it opens
        through any proxy (a shared one, or another node's link named in a snapshot's address
        book after a rebuild) then obeys its own links."""
        await self._start_registered(self.nodes[nid].proc, nid)

    async def start_executor(self, eid: str) -> None:
        """(Re)start an executor and tell the proxies which process it is."""
        await self._start_registered(self.executors[eid].proc, eid)

    async def _start_registered(self, proc: Proc, label: str) -> None:
        assert self.proxy is not None
        if proc.pid:
            await self.proxy.call("unregister", pid=proc.pid)
        proc.start()
        await self.proxy.call("register", pid=proc.pid, label=label)

    def real_address(self, address: str) -> str:
        """A proxy address (as named in a leader hint) mapped to the node it forwards to."""
        return self.proxy_to_node.get(address, address)

    @property
    def addresses(self) -> list[str]:
        return [self.nodes[n].address for n in self.node_ids]

    def data_dir(self, nid: str) -> Path:
        return self.run_dir / "data" / nid

    def node_of_address(self, address: str) -> str | None:
        real = self.real_address(address)
        return next((n.id for n in self.nodes.values() if n.address == real), None)

    # --- status ----------------------------------------------------------------------------

    def channel(self, address: str) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = grpc.aio.insecure_channel(address)
        return ch

    async def local_status(self, nid: str, timeout: float = STATUS_TIMEOUT) -> admin_pb2.NodeStatus | None:
        """The node's own view, asked directly (not through a proxy); None when it does not answer."""
        node = self.nodes[nid]
        if node.proc.paused or not node.proc.alive():
            return None
        stub = admin_pb2_grpc.AdminStub(self.channel(node.address))
        try:
            resp = await stub.Status(admin_pb2.StatusRequest(local_only=True), timeout=timeout)
        except grpc.aio.AioRpcError:
            return None
        return resp.nodes[0] if resp.nodes else None

    async def statuses(self) -> dict[str, admin_pb2.NodeStatus | None]:
        answers = await asyncio.gather(*(self.local_status(n) for n in self.node_ids))
        return dict(zip(self.node_ids, answers, strict=True))

    async def find_leader(self) -> str | None:
        """The node that says it leads at the highest term, by Admin Status."""
        best: tuple[int, str] | None = None
        for nid, st in (await self.statuses()).items():
            if st is not None and st.role == admin_pb2.ROLE_LEADER and (best is None or st.term > best[0]):
                best = (st.term, nid)
        return best[1] if best else None

    async def status_dicts(self) -> list[dict[str, Any]]:
        out = []
        for nid, st in (await self.statuses()).items():
            out.append(MessageToDict(st) if st is not None else {"id": nid, "error": "no answer"})
        return out

    def processes(self) -> list[Proc]:
        return [n.proc for n in self.nodes.values()] + [e.proc for e in self.executors.values()]

    def exit_code(self, name: str) -> int | None:
        proc = next(p for p in self.processes() if p.name == name)
        return proc.popen.returncode if proc.popen is not None else None

    # --- repair and stop -------------------------------------------------------------------

    async def heal_all(self) -> None:
        """Remove every fault: links pass, paused processes resume, dead processes restart."""
        if self.proxy is not None:
            await self.proxy.heal()
        for node in self.nodes.values():
            node.proc.resume()
            if not node.proc.alive():
                await self.start_node(node.id)
        for ex in self.executors.values():
            ex.proc.resume()
            if not ex.proc.alive():
                await self.start_executor(ex.id)

    async def stop_all(self) -> None:
        for ch in self._channels.values():
            with contextlib.suppress(Exception):
                await ch.close()
        self._channels.clear()
        procs = [e.proc for e in self.executors.values() if e.proc] + [n.proc for n in self.nodes.values() if n.proc]
        for p in procs:
            p.resume()
            if p.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(p.alive() for p in procs):
            await asyncio.sleep(0.1)
        for p in procs:
            p.kill9()
        if self.proxy is not None:
            await self.proxy.close()
        kill_run_leftovers(self.run_id)


def kill_run_leftovers(run_id: str) -> int:
    """SIGKILL any process still carrying JEPSEN_RUN=<run_id> (orphaned tasks and guards)."""
    return kill_marked("JEPSEN_RUN", run_id)

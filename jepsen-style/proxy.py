"""Fault-injecting TCP proxies, one per directed link, all in one helper process.

Every node-to-node link (n1 -> n2) and every executor-to-node link (e1 -> n2) is a listener on
127.0.0.1 that forwards to the target node's real port. The mode of a link decides what happens:

    pass       forward both ways
    drop       close existing connections (RST) and close new ones at once
    blackhole  accept and hold connections, forward nothing either way; on heal the held bytes
               flow again, as TCP would deliver them after a cut that ended before its timeouts
    one-way    forward the initiator's bytes (its requests), hold the other side's (the replies):
               the destination hears the source but cannot answer on that connection; paired
               with a blackhole on the reverse link, one direction of a pair of nodes is cut
    slow       forward both ways, each chunk held for a random delay in [delay_ms] (jitter;
               order kept), and, with loss > 0, each chunk resets its connection with that
               probability and each new connection is refused with it: a lossy link as TCP
               shows one (retransmission delays, then a reset), never a corrupted stream

Modes are kept per (source, destination) pair. A connection's source is the listener's owner,
except when one of the registered executor processes opens it: an executor follows the leader
hint a node gives it, which names that node's *peer* address (a node-to-node proxy), so such a
connection is matched to its process through /proc and obeys that executor's links instead.

The runner talks to this process over stdin/stdout, one JSON object per line each way:
    {"op": "listen", "name": N, "src": S, "dst": D, "target": PORT}  -> {"ok": true, "port": P}
    {"op": "set", "links": [[S, D], ...], "mode": "drop"}            -> {"ok": true}
    {"op": "set", ..., "mode": "slow", "delay_ms": [50, 500], "loss": 0.01}
    {"op": "heal"}                                                    -> {"ok": true}
    {"op": "register", "pid": PID, "label": S}                        -> {"ok": true}
    {"op": "stats"}                                                   -> {"ok": true, "stats": {...}}
    {"op": "exit"}                                                    -> {"ok": true}, then exits
Forwarding reads up to CHUNK bytes at a time and never looks at the bytes, so the proxies stay
cheap next to a cluster on two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CHUNK = 256 * 1024  # bytes per read; StreamReader pauses the socket beyond twice its limit
READER_LIMIT = 256 * 1024  # bounds what one direction of one connection buffers
CONNECT_TIMEOUT = 2.0
MODES = ("pass", "drop", "blackhole", "one-way", "slow")
Link = tuple[str, str]
SLOW_QUEUE = 64  # chunks one direction of a slow link holds before it stops reading
MAX_DELAY_MS = 10_000
MAX_LOSS = 0.5


@dataclass(frozen=True)
class Shape:
    """How a link treats its bytes: its mode and, for `slow`, the delay range and loss."""

    mode: str = "pass"
    delay_ms: tuple[int, int] = (0, 0)
    loss: float = 0.0

    @classmethod
    def parse(cls, mode: str, delay_ms: Any = None, loss: Any = None) -> Shape:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        lo, hi = (int(delay_ms[0]), int(delay_ms[1])) if delay_ms else (0, 0)
        if not 0 <= lo <= hi <= MAX_DELAY_MS:
            raise ValueError(f"delay_ms must be [lo, hi] with 0 <= lo <= hi <= {MAX_DELAY_MS}, not {delay_ms!r}")
        p = float(loss or 0.0)
        if not 0.0 <= p <= MAX_LOSS:
            raise ValueError(f"loss must be in [0, {MAX_LOSS}], not {loss!r}")
        return cls(mode, (lo, hi), p)


@dataclass(eq=False)
class Conn:
    """One proxied connection: the client side, the upstream side, and whether bytes may flow."""

    src: str
    dst: str
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    flowing: asyncio.Event = field(default_factory=asyncio.Event)  # the initiator's bytes may go
    replies: asyncio.Event = field(default_factory=asyncio.Event)  # the other side's bytes may come back
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False

    def abort(self) -> None:
        self.closed = True
        self.flowing.set()  # wake a connection held by a blackhole so that it can end
        self.replies.set()
        for w in (self.client, self.upstream):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.transport.abort()
        for t in self.tasks:
            t.cancel()


PASS = Shape()


class Network:
    """Link modes and the live connections they govern."""

    def __init__(self) -> None:
        self.shapes: dict[Link, Shape] = {}
        self.conns: set[Conn] = set()
        self.rng = random.Random()
        self.sources: dict[int, str] = {}  # pid of a registered process -> its source label
        self.counters: dict[str, int] = {"accepted": 0, "refused": 0, "aborted": 0, "reclassified": 0,
                                         "delayed_chunks": 0, "lost": 0}

    def shape(self, src: str, dst: str) -> Shape:
        return self.shapes.get((src, dst), PASS)

    def mode(self, src: str, dst: str) -> str:
        return self.shape(src, dst).mode

    def set_modes(self, links: list[Link], mode: str, delay_ms: Any = None, loss: Any = None) -> None:
        shape = Shape.parse(mode, delay_ms, loss)
        for src, dst in links:
            if shape.mode == "pass":
                self.shapes.pop((src, dst), None)
            else:
                self.shapes[(src, dst)] = shape
        self._apply()

    def heal(self) -> None:
        self.shapes.clear()
        self._apply()

    def _apply(self) -> None:
        for conn in list(self.conns):
            mode = self.mode(conn.src, conn.dst)
            if mode == "drop":
                self.counters["aborted"] += 1
                self.conns.discard(conn)
                conn.abort()
                continue
            conn.flowing.set() if mode in ("pass", "one-way", "slow") else conn.flowing.clear()
            conn.replies.set() if mode in ("pass", "slow") else conn.replies.clear()

    def lose(self, src: str, dst: str) -> bool:
        """Whether a lossy link loses this chunk or connection now (drawn per call)."""
        loss = self.shape(src, dst).loss
        if loss > 0 and self.rng.random() < loss:
            self.counters["lost"] += 1
            return True
        return False

    def delay(self, src: str, dst: str) -> float:
        """Seconds a chunk on this link is held (0 unless slow)."""
        lo, hi = self.shape(src, dst).delay_ms
        return self.rng.uniform(lo, hi) / 1000 if hi > 0 else 0.0

    def source_of(self, peer_port: int, listen_port: int, default: str) -> str:
        """The registered process owning the client socket, else the listener's owner."""
        if not self.sources:
            return default
        try:
            inode = _socket_inode(peer_port, listen_port)
            if inode is None:
                return default
            for pid, label in self.sources.items():
                if _pid_has_socket(pid, inode):
                    if label != default:
                        self.counters["reclassified"] += 1
                    return label
        except OSError:
            pass
        return default


def _socket_inode(local_port: int, remote_port: int) -> int | None:
    """The inode of the loopback TCP socket local_port -> remote_port, from /proc/net/tcp{,6}
    (gRPC clients open dual-stack sockets: 127.0.0.1 shows up as ::ffff:127.0.0.1 in tcp6)."""
    want_local, want_remote = f":{local_port:04X}", f":{remote_port:04X}"
    for table in ("/proc/net/tcp6", "/proc/net/tcp"):
        with open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(want_local) and parts[2].endswith(want_remote):
                    return int(parts[9])
    return None


def _pid_has_socket(pid: int, inode: int) -> bool:
    target = f"socket:[{inode}]"
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return False
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{name}") == target:
                return True
    return False


class Listener:
    """One directed link's listening socket; forwards to the target port on 127.0.0.1."""

    def __init__(self, net: Network, name: str, src: str, dst: str, target: int) -> None:
        self.net, self.name, self.src, self.dst, self.target = net, name, src, dst, target
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=READER_LIMIT,
                                                 reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_port = writer.get_extra_info("peername")[1]
        src = self.net.source_of(peer_port, self.port, self.src)
        mode = self.net.mode(src, self.dst)
        if mode == "drop" or (mode == "slow" and self.net.lose(src, self.dst)):
            self.net.counters["refused"] += 1
            writer.transport.abort()
            return
        conn = Conn(src, self.dst, writer)
        if mode in ("pass", "one-way", "slow"):
            conn.flowing.set()
        if mode in ("pass", "slow"):
            conn.replies.set()
        self.net.counters["accepted"] += 1
        self.net.conns.add(conn)
        try:
            await self._serve(conn, reader)
        finally:
            self.net.conns.discard(conn)
            conn.abort()

    async def _serve(self, conn: Conn, reader: asyncio.StreamReader) -> None:
        await conn.flowing.wait()  # a blackholed link holds a new connection until healed
        if conn.closed:
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target, limit=READER_LIMIT), CONNECT_TIMEOUT)
        except (TimeoutError, OSError):
            return
        conn.upstream = up_writer
        with contextlib.suppress(Exception):
            up_writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.client.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        a = asyncio.create_task(_pump(self.net, conn, reader, up_writer, conn.flowing))
        b = asyncio.create_task(_pump(self.net, conn, up_reader, conn.client, conn.replies))
        conn.tasks = [a, b]
        await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)


async def _pump(net: Network, conn: Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                gate: asyncio.Event) -> None:
    """One direction of a connection. A slow link's chunks go through a bounded queue to a
    writer that releases each at its time (release times never decrease: order is kept)."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(SLOW_QUEUE)
    release = asyncio.create_task(_release(conn, queue, writer))
    loop = asyncio.get_running_loop()
    last = 0.0
    try:
        with contextlib.suppress(Exception):
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                if not gate.is_set():
                    await gate.wait()  # held: keep this chunk, read no more
                if conn.closed:
                    break
                if net.mode(conn.src, conn.dst) == "slow" and net.lose(conn.src, conn.dst):
                    net.counters["aborted"] += 1
                    conn.abort()
                    break
                delay = net.delay(conn.src, conn.dst)
                if delay:
                    net.counters["delayed_chunks"] += 1
                last = max(last, loop.time() + delay)
                await queue.put((last if delay else 0.0, data))
        await queue.put((0.0, b""))
        await release
    finally:
        release.cancel()


async def _release(conn: Conn, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(Exception):
        while True:
            at, data = await queue.get()
            if not data or conn.closed:
                return
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()


class ProxyServer:
    """The control loop: JSON commands on stdin, JSON answers on stdout."""

    def __init__(self) -> None:
        self.net = Network()
        self.listeners: dict[str, Listener] = {}
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "listen": self._listen, "set": self._set, "heal": self._heal,
            "register": self._register, "unregister": self._unregister, "stats": self._stats,
        }

    async def _listen(self, cmd: dict[str, Any]) -> dict[str, Any]:
        lst = Listener(self.net, cmd["name"], cmd["src"], cmd["dst"], int(cmd["target"]))
        port = await lst.start()
        self.listeners[lst.name] = lst
        return {"port": port}

    async def _set(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.net.set_modes([(s, d) for s, d in cmd["links"]], cmd["mode"], cmd.get("delay_ms"), cmd.get("loss"))
        return {}

    async def _heal(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.net.heal()
        return {}

    async def _register(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.net.sources[int(cmd["pid"])] = str(cmd["label"])
        return {}

    async def _unregister(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.net.sources.pop(int(cmd["pid"]), None)
        return {}

    async def _stats(self, cmd: dict[str, Any]) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"stats": {**self.net.counters, "open": len(self.net.conns),
                          "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                          "modes": {f"{s}->{d}": sh.mode for (s, d), sh in self.net.shapes.items()}}}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                break  # the runner is gone: shut down
            cmd = json.loads(line)
            if cmd.get("op") == "exit":
                _reply({"ok": True})
                break
            try:
                out = await self.handlers[cmd["op"]](cmd)
                _reply({"ok": True, **out})
            except Exception as e:  # a bad command is answered, never fatal
                _reply({"ok": False, "error": f"{type(e).__name__}: {e}"})
        await self.close()

    async def close(self) -> None:
        for conn in list(self.net.conns):
            conn.abort()
        for lst in self.listeners.values():
            await lst.close()


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class ProxyControl:
    """The runner's handle on the proxy process (asyncio; one command at a time)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._lock = asyncio.Lock()

    @classmethod
    async def spawn(cls, log_path: str) -> ProxyControl:
        with open(log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, os.path.abspath(__file__), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log, start_new_session=True)
        return cls(proc)

    async def call(self, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self.proc.stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), 10.0)
        if not line:
            raise RuntimeError("the proxy process exited")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"proxy {op} failed: {answer.get('error')}")
        return answer

    async def listen(self, name: str, src: str, dst: str, target: int) -> int:
        return int((await self.call("listen", name=name, src=src, dst=dst, target=target))["port"])

    async def set(self, links: list[Link], mode: str, **shape: Any) -> None:
        """Set links to a mode; `slow` takes delay_ms=[lo, hi] and loss=p."""
        await self.call("set", links=[list(link) for link in links], mode=mode, **shape)

    async def heal(self) -> None:
        await self.call("heal")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call("exit"), 3.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 3.0)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            await self.proc.wait()


if __name__ == "__main__":
    asyncio.run(ProxyServer().run())

"""The PySyncObj anchor: 3 replicas in separate processes (scripts/bench/pso_replica.py), each with a
control port on which the load generator asks for committed increments. Each worker keeps its own
TCP connection per replica, so a worker has one request in flight like on the other systems."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchlib.loadgen import Op, Retrier
from benchlib.procs import HOST, Proc, ProcessSet, free_ports
from benchlib.systems import ManagedMembers

REPLICA = Path(__file__).resolve().parent.parent / "pso_replica.py"


class LineConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> LineConnection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def ask(self, command: bytes) -> str:
        self.writer.write(command + b"\n")
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("replica closed the connection")
        text = line.decode().strip()
        if not text.startswith("ok"):
            raise RuntimeError(f"replica refused: {text}")
        return text[3:]

    def close(self) -> None:
        self.writer.close()


class PsoCluster(ManagedMembers):
    member_kind = "PySyncObj replica"
    name = "pysyncobj"

    def __init__(self, root: Path, procs: ProcessSet, size: int = 3) -> None:
        self.root, self.procs = root, procs
        self.members = [f"p{i + 1}" for i in range(size)]
        ports = free_ports(2 * size)
        self.raft_port = dict(zip(self.members, ports[:size], strict=True))
        self.control_port = dict(zip(self.members, ports[size:], strict=True))
        self.by_raft_address = {f"{HOST}:{p}": m for m, p in self.raft_port.items()}
        self.proc: dict[str, Proc] = {}
        self._conns: list[LineConnection] = []

    def _argv(self, member: str) -> list[str]:
        partners = ",".join(f"{HOST}:{self.raft_port[m]}" for m in self.members if m != member)
        return [sys.executable, str(REPLICA), "--self", f"{HOST}:{self.raft_port[member]}",
                "--partners", partners, "--control", str(self.control_port[member])]

    async def start(self) -> None:
        for m in self.members:
            self.proc[m] = self.procs.add(Proc(m, self._argv(m), self.root / "logs" / f"pso-{m}.log"))
            self.proc[m].start()
        await self.leader(timeout=30)

    async def status(self, member: str) -> dict[str, Any]:
        conn = await asyncio.wait_for(LineConnection.open(self.control_port[member]), 0.5)
        try:
            return dict(json.loads(await asyncio.wait_for(conn.ask(b"s"), 0.5)))
        finally:
            conn.close()

    async def _statuses(self) -> dict[str, dict[str, Any]]:
        async def one(m: str) -> tuple[str, dict[str, Any] | None]:
            try:
                return m, await self.status(m)
            except (TimeoutError, OSError, RuntimeError, ValueError):
                return m, None
        results = await asyncio.gather(*(one(m) for m in self.members if self.proc[m].alive()))
        return {m: s for m, s in results if s is not None}

    async def leader(self, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for status in (await self._statuses()).values():
                name = self.by_raft_address.get(status["leader"], "")
                if name and self.proc[name].alive():
                    return name
            await asyncio.sleep(0.05)
        raise RuntimeError("PySyncObj has no leader:\n" + self.proc[self.members[0]].log_tail())

    async def write_op(self) -> Op:
        retrier = Retrier(self.members)
        retrier.preferred = await self.leader()
        conns: dict[tuple[int, str], LineConnection] = {}

        async def attempt(worker: int, member: str) -> str:
            conn = conns.get((worker, member))
            if conn is None:
                conn = conns[worker, member] = await LineConnection.open(self.control_port[member])
                self._conns.append(conn)
            try:
                return await conn.ask(b"i")
            except BaseException:  # a timed-out or failed connection may hold a late answer: drop it
                conns.pop((worker, member), None)
                conn.close()
                raise

        async def op(worker: int) -> object:
            return await retrier.call(lambda m: attempt(worker, m))

        return op

    async def _caught_up(self, member: str) -> bool:
        statuses = await self._statuses()
        mine = statuses.get(member)
        leader = self.by_raft_address.get(mine["leader"], "") if mine else ""
        return bool(mine and leader in statuses and mine["last_applied"] >= statuses[leader]["commit_idx"])

    async def close(self) -> None:
        conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

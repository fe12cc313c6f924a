"""The etcd anchor: a 3-member cluster on loopback (the Debian package's binary, default heartbeat
100 ms and election 1000 ms, WAL fsync on as always), written to with KV/Put of ~200-byte values
through grpc.aio's generic unary calls, the request encoded by hand (benchlib.wire)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path

import grpc
import grpc.aio

from benchlib import wire
from benchlib.loadgen import Op, Retrier
from benchlib.procs import HOST, Proc, ProcessSet, free_ports
from benchlib.systems import ManagedMembers
from raftsched.client.channels import CHANNEL_OPTIONS

PUT = "/etcdserverpb.KV/Put"
STATUS = "/etcdserverpb.Maintenance/Status"
VALUE = b"v" * 200
HEARTBEAT_MS = 100
ELECTION_MS = 1000


def _identity(data: bytes) -> bytes:
    return data


class EtcdCluster(ManagedMembers):
    member_kind = "etcd member"
    name = "etcd"

    def __init__(self, binary: str, root: Path, procs: ProcessSet, size: int = 3) -> None:
        self.binary, self.root, self.procs = binary, root, procs
        self.members = [f"e{i + 1}" for i in range(size)]
        ports = free_ports(2 * size)
        self.client_port = dict(zip(self.members, ports[:size], strict=True))
        self.peer_port = dict(zip(self.members, ports[size:], strict=True))
        self.proc: dict[str, Proc] = {}
        self.member_ids: dict[int, str] = {}  # etcd's member id -> our name
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._clients = itertools.count()

    def address(self, member: str) -> str:
        return f"{HOST}:{self.client_port[member]}"

    def _argv(self, member: str) -> list[str]:
        initial = ",".join(f"{m}=http://{HOST}:{self.peer_port[m]}" for m in self.members)
        client = f"http://{self.address(member)}"
        peer = f"http://{HOST}:{self.peer_port[member]}"
        return [self.binary, "--name", member, "--data-dir", str(self.root / "etcd" / member),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"bench-{os.getpid()}",
                "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
                "--logger", "zap", "--log-level", "warn"]

    async def start(self) -> None:
        for m in self.members:
            self.proc[m] = self.procs.add(Proc(m, self._argv(m), self.root / "logs" / f"etcd-{m}.log"))
            self.proc[m].start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses = await self._statuses()
            if len(statuses) == len(self.members) and all(s["leader"] for s in statuses.values()):
                self.member_ids = {s["member_id"]: m for m, s in statuses.items()}
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("etcd cluster did not elect a leader in 30 s:\n" + self.proc[self.members[0]].log_tail())

    def channel(self, member: str) -> grpc.aio.Channel:
        channel = self._channels.get(member)
        if channel is None:
            channel = self._channels[member] = grpc.aio.insecure_channel(self.address(member), options=CHANNEL_OPTIONS)
        return channel

    async def status(self, member: str, timeout: float = 0.5) -> dict[str, int]:
        call = self.channel(member).unary_unary(STATUS, request_serializer=_identity,
                                                response_deserializer=_identity)
        return wire.etcd_status(await call(b"", timeout=timeout))

    async def _statuses(self) -> dict[str, dict[str, int]]:
        async def one(m: str) -> tuple[str, dict[str, int] | None]:
            try:
                return m, await self.status(m)
            except grpc.aio.AioRpcError:
                return m, None
        results = await asyncio.gather(*(one(m) for m in self.members if self.proc[m].alive()))
        return {m: s for m, s in results if s is not None}

    async def leader(self) -> str:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for status in (await self._statuses()).values():
                name = self.member_ids.get(status["leader"])
                if name and self.proc[name].alive():
                    return name
            await asyncio.sleep(0.05)
        raise RuntimeError("etcd has no leader")

    async def write_op(self) -> Op:
        """Puts of 200-byte values through a retrying client that starts at the current leader, as
        raftsched's client sticks to the leader it learnt (one shared HTTP/2 connection per member)."""
        client = next(self._clients)
        retrier = Retrier(self.members)
        retrier.preferred = await self.leader()
        put = {m: self.channel(m).unary_unary(PUT, request_serializer=_identity,
                                              response_deserializer=_identity) for m in self.members}
        counter = itertools.count()

        async def op(worker: int) -> object:
            request = wire.put_request(f"bench/{client}/{worker}/{next(counter)}".encode(), VALUE)
            return await retrier.call(lambda m: put[m](request, timeout=retrier.attempt_timeout))

        return op

    async def _caught_up(self, member: str) -> bool:
        statuses = await self._statuses()
        mine = statuses.get(member)
        leader = self.member_ids.get(mine["leader"], "") if mine else ""
        return bool(mine and leader in statuses and mine["raft_applied_index"] >= statuses[leader]["raft_index"])

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

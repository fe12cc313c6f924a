"""The disk nemesis: damage the data directory of a stopped minority node, then see what it does.

    disk-truncate-wal  cut 1 B … 64 KiB off the end of the newest RocksDB WAL (NNNNNN.log)
    disk-bitflip       flip 1-8 bits at random offsets of a random SST or WAL file
    disk-delete        delete a random SST or WAL file

start: kill -9 a random non-leader node (never more than a minority impaired), then damage its
RocksDB directory (what was damaged, and where, is in the start value). stop: start the node
again and watch it for up to REFUSE_WAIT_S. Either it refuses to start, and then its error must
name the damaged file and the runbook (docs/operations.md): the fault then rebuilds it with
`raftsched node --rebuild-from-peers` (it leaves the membership, wipes its data, rejoins as a
learner by InstallSnapshot and promotes itself) and waits until it is a voter again; or it
starts, and must catch up with its peers. The end value says which ("outcome": "refused" |
"started"), the refusal's text, whether it named the file and the runbook, and the rebuild's
steps. The node counts as impaired until stop() returns. The checkers confirm that nothing
acknowledged was lost.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc.aio
from cluster import Cluster
from faultbase import Fault

from raftsched.v1 import admin_pb2, admin_pb2_grpc

KINDS = ("truncate-wal", "bitflip", "delete")
MAX_TRUNCATE = 64 * 1024
REFUSE_WAIT_S = 15.0  # a node that is still up and answering after this started
REJOIN_DEADLINE_S = 120.0  # how long stop() waits for a rebuilt node to be a voter again
RUNBOOK = "docs/operations.md"
REBUILD_TRIES = 3


def rocksdb_files(data_dir: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The RocksDB files (not the snapshots) with these suffixes and some bytes, oldest first."""
    files = [p for p in data_dir.iterdir() if p.is_file() and p.suffix in suffixes and p.stat().st_size > 0]
    return sorted(files, key=lambda p: p.name)


def truncate_wal(data_dir: Path, rng: random.Random) -> dict[str, Any] | None:
    wals = rocksdb_files(data_dir, (".log",))
    if not wals:
        return None
    wal = wals[-1]
    size = wal.stat().st_size
    cut = rng.randint(1, min(size, MAX_TRUNCATE))
    with wal.open("r+b") as f:
        f.truncate(size - cut)
    return {"file": wal.name, "bytes_before": size, "bytes_cut": cut}


def flip_bits(data_dir: Path, rng: random.Random, suffixes: tuple[str, ...] = (".sst", ".log"),
              ) -> dict[str, Any] | None:
    files = rocksdb_files(data_dir, suffixes)
    if not files:
        return None
    victim = rng.choice(files)
    data = bytearray(victim.read_bytes())
    flips = []
    for _ in range(rng.randint(1, 8)):
        offset, bit = rng.randrange(len(data)), rng.randrange(8)
        data[offset] ^= 1 << bit
        flips.append([offset, bit])
    victim.write_bytes(bytes(data))
    return {"file": victim.name, "bytes": len(data), "flips": flips}


def delete_file(data_dir: Path, rng: random.Random) -> dict[str, Any] | None:
    files = rocksdb_files(data_dir, (".sst", ".log"))
    if not files:
        return None
    victim = rng.choice(files)
    size = victim.stat().st_size
    victim.unlink()
    return {"file": victim.name, "bytes": size}


CORRUPT = {"truncate-wal": truncate_wal, "bitflip": flip_bits, "delete": delete_file}


def refusal(log_text: str) -> str:
    """The node's last `raftsched: error:` line (what it printed when it refused to start)."""
    lines = [ln for ln in log_text.splitlines() if "raftsched: error:" in ln]
    return lines[-1].strip() if lines else ""


def judge_refusal(message: str, file_name: str) -> dict[str, Any]:
    """Whether a refusal names the damaged file and the runbook step."""
    return {"message": message[-400:], "names_file": bool(file_name) and file_name in message,
            "names_runbook": RUNBOOK in message}


@dataclass
class DiskFault(Fault):
    kind: str = "bitflip"
    avoid: frozenset[str] = frozenset()
    target: str = ""
    damage: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"disk kind must be one of {KINDS}, not {self.kind!r}")
        self.f = f"disk-{self.kind}"

    async def start(self, c: Cluster, rng: random.Random) -> dict[str, Any] | None:
        lead = await c.find_leader()
        candidates = [n for n in c.node_ids if n not in self.avoid and n != lead and c.nodes[n].proc.alive()]
        if lead is None or not candidates:
            return None
        self.target = rng.choice(candidates)
        self.impairs = frozenset({self.target})
        c.nodes[self.target].proc.kill9()
        damage = CORRUPT[self.kind](c.data_dir(self.target), rng)
        self.damage = damage or {"file": "", "note": "no RocksDB file of that kind to damage"}
        return {"targets": [self.target], "kind": self.kind, **self.damage}

    async def stop(self, c: Cluster) -> dict[str, Any]:
        proc = c.nodes[self.target].proc
        log_from = proc.log_path.stat().st_size if proc.log_path.exists() else 0
        if not proc.alive():
            await c.start_node(self.target)
        outcome = await self._watch_start(c)
        value: dict[str, Any] = {"targets": [self.target], "kind": self.kind, "file": self.damage.get("file", ""),
                                 "outcome": outcome}
        if outcome == "refused":
            text = proc.log_path.read_bytes()[log_from:].decode(errors="replace")
            value["refusal"] = judge_refusal(refusal(text), str(self.damage.get("file", "")))
            value["exit_code"] = proc.popen.returncode if proc.popen is not None else None
            value["rebuild"] = await self._rebuild(c)
        return value

    async def _watch_start(self, c: Cluster) -> str:
        """refused (the process exited) or started (it answers and stays up for REFUSE_WAIT_S)."""
        proc = c.nodes[self.target].proc
        deadline = asyncio.get_running_loop().time() + REFUSE_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            if not proc.alive():
                return "refused"
            await asyncio.sleep(0.2)
        return "started" if await c.local_status(self.target) is not None else "refused-hung"

    async def _rebuild(self, c: Cluster) -> dict[str, Any]:
        """`raftsched node --rebuild-from-peers` with the node's own arguments, then wait until
        the leader lists it as a voter again. A rebuild that exits is started again (up to
        REBUILD_TRIES): its --join can reach a peer that has not applied the re-add yet ("does
        not list n4 as a member"), seen in a run."""
        proc = c.nodes[self.target].proc
        argv = list(proc.argv)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        exits: list[int | None] = []
        while True:
            proc.argv = [*argv, "--rebuild-from-peers"]
            try:
                await c.start_node(self.target)
            finally:
                proc.argv = argv
            while proc.alive() and loop.time() - t0 < REJOIN_DEADLINE_S:
                if await _is_voter(c, self.target):
                    return {"outcome": "voter", "seconds": round(loop.time() - t0, 1), "exits": exits}
                await asyncio.sleep(0.5)
            if proc.alive():
                return {"outcome": "timeout", "seconds": REJOIN_DEADLINE_S, "exits": exits}
            exits.append(proc.popen.returncode if proc.popen is not None else None)
            if len(exits) >= REBUILD_TRIES:
                return {"outcome": "exited", "exits": exits, "seconds": round(loop.time() - t0, 1)}
            await asyncio.sleep(2.0)


async def _is_voter(c: Cluster, nid: str) -> bool:
    lead = await c.find_leader()
    if lead is None or lead == nid:
        return lead == nid
    stub = admin_pb2_grpc.AdminStub(c.channel(c.nodes[lead].address))
    try:
        members = await stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=2.0)
    except grpc.aio.AioRpcError:
        return False
    return nid in {m.id for m in members.voters} and await c.local_status(nid) is not None

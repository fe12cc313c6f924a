"""State snapshots of a node: made by another process from a RocksDB secondary instance, checked
and installed as a new generation of the state families (SPEC §7).

    make       `python -m raftsched.storage.export` writes `snapshots/snap-N.rss` (a bundle of one
               SST file per family, `raftsched.storage.bundle`); nothing runs on the event loop but
               waiting for the process. One at a time; callers arriving meanwhile share it.
    for_peer   the latest snapshot if it is still recent enough for a follower to continue from the
               log, else a new one.
    stage      a received file: every digest checked and the SST files extracted, in a worker
               thread; then it waits for the Raft core to decide.
    install    the staged files become the next generation (`NodeDB.prepare_generation`); the
               returned `StateInstall` puts "this generation is current" into the same synced
               batch as the Raft snapshot meta, then switches the state machine over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rocksdict import WriteBatch

from raftsched.loopwatch import LoopWatch
from raftsched.storage import bundle
from raftsched.storage.db import NodeDB
from raftsched.storage.errors import StoreError

log = logging.getLogger("raftsched.snapshots")
SNAPSHOT_DIR = "snapshots"
EXPORT_TIMEOUT_S = 900.0


class SnapshotFailed(StoreError):
    """No snapshot could be made now (the export process failed); the message says why."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    path: Path
    index: int  # the applied index of the state it holds
    size: int
    seconds: float  # how long making it took
    loop_stall: float  # the longest event-loop stall while it was made (seconds)


@dataclass(frozen=True, slots=True)
class Staged:
    """A received snapshot, checked, with its SST files extracted and ready to ingest."""

    index: int
    files: dict[str, list[Path]]
    directory: Path


class StateInstall:
    """An install in progress: the next generation is built; `stage` and `finish` complete it."""

    def __init__(self, db: NodeDB, generation: int, staged: Staged, reload: Callable[[], None]) -> None:
        self._db = db
        self._generation = generation
        self._staged = staged
        self._reload = reload

    def stage(self, batch: WriteBatch) -> None:
        self._db.stage_generation(batch, self._generation)

    def finish(self) -> None:
        """After the batch is durable: the new generation is the state; drop the old one."""
        self._db.switch_generation(self._generation)
        self._reload()
        shutil.rmtree(self._staged.directory, ignore_errors=True)


class SnapshotKeeper:
    def __init__(self, db: NodeDB, families: list[str], watch: LoopWatch | None = None) -> None:
        self._db = db
        self._watch = watch
        self._families = families
        self.directory = db.path / SNAPSHOT_DIR
        shutil.rmtree(self.directory, ignore_errors=True)  # what a crash left: never trusted
        self.directory.mkdir(parents=True)
        self.latest: Snapshot | None = None
        self._making: asyncio.Task[Snapshot] | None = None
        self._made = 0

    # --- making -----------------------------------------------------------------------------------

    async def for_peer(self, oldest_usable: int) -> Snapshot:
        """A snapshot at `oldest_usable` or later: the latest, or a new one."""
        latest = self.latest
        if latest is not None and latest.index >= oldest_usable and latest.path.exists():
            return latest
        return await self.make()

    async def make(self) -> Snapshot:
        """A new snapshot of the state as applied now (shared with callers arriving meanwhile)."""
        if self._making is None or self._making.done():
            self._making = asyncio.get_running_loop().create_task(self._export(), name="snapshot-export")
        return await asyncio.shield(self._making)

    async def _export(self) -> Snapshot:
        started = time.monotonic()
        self._made += 1
        out = self.directory / f"snap-{self._made}.rss"
        work = self.directory / f"export-{self._made}"
        args = [sys.executable, "-m", "raftsched.storage.export", "--data-dir", str(self._db.path),
                "--generation", str(self._db.generation), "--families", ",".join(self._families),
                "--out", str(out), "--work", str(work)]
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), EXPORT_TIMEOUT_S)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            shutil.rmtree(work, ignore_errors=True)
            out.unlink(missing_ok=True)
            raise
        if proc.returncode != 0:
            out.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
            raise SnapshotFailed(f"snapshot export failed: {stderr.decode(errors='replace').strip()[-300:]}")
        result = json.loads(stdout)
        stall = self._watch.longest_since(started) if self._watch is not None else 0.0
        snapshot = Snapshot(out, int(result["index"]), int(result["bytes"]), time.monotonic() - started, stall)
        previous, self.latest = self.latest, snapshot
        if previous is not None:
            previous.path.unlink(missing_ok=True)  # a transfer reading it keeps its open file
        log.info("made a state snapshot at index %d (%d bytes) in %.2f s; longest event-loop stall meanwhile "
                 "%.1f ms", snapshot.index, snapshot.size, snapshot.seconds, 1000 * stall)
        return snapshot

    # --- receiving and installing -----------------------------------------------------------------

    async def stage(self, path: Path) -> Staged:
        """Check a received file and extract its SST files (in a worker thread); raises
        bundle.BundleError for a file that is not a whole, intact snapshot."""
        self._made += 1
        directory = self.directory / f"staged-{self._made}"
        try:
            return await asyncio.to_thread(_check_and_extract, path, directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        finally:
            path.unlink(missing_ok=True)

    def install(self, staged: Staged, reload: Callable[[], None]) -> StateInstall:
        started = time.monotonic()
        generation = self._db.prepare_generation(staged.files)
        log.info("built state generation %d from a snapshot at %d in %.3f s", generation, staged.index,
                 time.monotonic() - started)
        return StateInstall(self._db, generation, staged, reload)

    def discard(self, staged: Staged) -> None:
        shutil.rmtree(staged.directory, ignore_errors=True)


def _check_and_extract(path: Path, directory: Path) -> Staged:
    trailer = bundle.verify(path)
    return Staged(trailer.index, bundle.extract(path, trailer, directory), directory)

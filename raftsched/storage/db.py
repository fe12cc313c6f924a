"""`NodeDB`: the one RocksDB directory holding all durable state of a node.

Column families: `raft_log` and `raft_meta` (owned by `RaftStore`) plus whatever the caller names
(the state machine's `sm_*` families). One `WriteBatch` may span several families, which is how
the state machine writes its data and its applied index atomically (SPEC §7).

The caller's families come in **generations**, so that a whole new state (a snapshot installed
from the leader) replaces the old one atomically: `prepare_generation` builds generation g+1 in
new column families (`sm_jobs@g+1`, ...) from SST files; `stage_generation` puts "g+1 is current"
into a WriteBatch the caller writes together with its own records (the Raft snapshot meta); and
`switch_generation` then drops generation g. A crash before that batch leaves g current and g+1
is dropped at the next open; a crash after it leaves g+1 current and g is dropped. Generation 0
uses the plain names, so data directories of earlier versions open unchanged.

rocksdict keeps the database open while any view, handle or iterator of it is alive, so `NodeDB`
owns the views and handles: callers fetch them with `cf()` / `handle()` when needed and must not
keep them past `close()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterable
from pathlib import Path

from rocksdict import (
    BlockBasedOptions,
    Cache,
    ColumnFamily,
    DBRecoveryMode,
    IngestExternalFileOptions,
    Options,
    Rdict,
    WriteBatch,
    WriteBufferManager,
    WriteOptions,
)

from raftsched.storage.codec import decode_format_version, encode_format_version
from raftsched.storage.errors import StoreError

RAFT_LOG = "raft_log"
RAFT_META = "raft_meta"
FORMAT_VERSION = 1
FORMAT_KEY = b"format_version"
GENERATION_KEY = b"state_generation"
# Small on purpose: a node's memory must not depend on how much history it stores, and these caches
# fill to their cap as history grows (the OS page cache keeps the hot SST files anyway). Measured
# with the state-that-lasts check (10k -> 150k finished jobs): caps of 16 + 16 MiB let the leader's
# RSS grow 1.45x, 8 + 8 MiB keep it under 1.3x; `make bench` showed no loss of submit throughput.
BLOCK_CACHE_BYTES = 8 << 20
MEMTABLE_BUDGET_BYTES = 8 << 20  # all families together; a flush frees it
MEMTABLE_BYTES = 2 << 20  # one family's memtable before it is flushed
LOCK_FILE = "LOCK.raftsched"
_DEFAULT_CF = "default"


def family_name(base: str, generation: int) -> str:
    """The column family that holds `base` in `generation` (0: the plain name)."""
    return base if generation == 0 else f"{base}@{generation}"


def _generation_of(name: str) -> tuple[str, int]:
    base, sep, gen = name.rpartition("@")
    return (base, int(gen)) if sep and gen.isdigit() else (name, 0)


_ROCKSDB_FILE = re.compile(r"\b(\d{6}\.(?:log|sst)|MANIFEST-\d+)\b")
_LOG_TAIL_BYTES = 64 * 1024


def _damaged_file_hint(path: Path, error: str) -> str:
    """RocksDB's corruption status often leaves out the file (a WAL checksum mismatch does);
    its info log (LOG) names it. "; damaged file: NAME" when the error or the LOG's last
    corruption line names one, else ""."""
    if _ROCKSDB_FILE.search(error) or "orrupt" not in error:
        return ""
    try:
        with (path / "LOG").open("rb") as f:
            f.seek(max(0, f.seek(0, 2) - _LOG_TAIL_BYTES))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    for line in reversed(tail.splitlines()):
        found = _ROCKSDB_FILE.search(line)
        if found and ("orrupt" in line or "checksum" in line or "dropping" in line):
            return f"; damaged file: {found.group(1)} (RocksDB's LOG: {line.strip()[-200:]})"
    return ""


class NodeDB:
    """Opens (creating if missing) and exclusively locks a node's data directory."""

    def __init__(self, path: str | os.PathLike[str], *, column_families: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = _acquire_lock(self.path)
        self._rdict: Rdict | None = None
        self._views: dict[str, Rdict] = {}
        self._handles: dict[str, ColumnFamily] = {}
        self._wal_fds: dict[str, int] = {}  # owned by sync_wal_files (one call at a time)
        self._wal_synced: dict[str, int] = {}
        self._sync_opts = _write_options(sync=True)
        self._async_opts = _write_options(sync=False)
        self._state = frozenset(column_families)  # the families that come in generations
        self.generation = 0
        # One memory budget for the whole directory, whatever its size (SPEC promise 12): the
        # memtables of every family share one write-buffer budget and the reads one block cache.
        self._cache = Cache(BLOCK_CACHE_BYTES)
        self._write_buffers = WriteBufferManager(MEMTABLE_BUDGET_BYTES, False)
        try:
            self._open()
            self._check_format()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        existing = _existing_column_families(self.path) - {_DEFAULT_CF}
        try:
            self._rdict = Rdict(str(self.path), self._options(),
                                column_families={n: self._options() for n in existing})
        except Exception as exc:  # rocksdict raises a bare Exception for every RocksDB status
            raise StoreError(f"cannot open RocksDB in {self.path}: {exc}{_damaged_file_hint(self.path, str(exc))}"
                             ) from exc
        for name in existing:
            self._map(name)
        for name in (RAFT_LOG, RAFT_META):
            self._ensure(name)
        raw = self._views[RAFT_META].get(GENERATION_KEY)
        self.generation = int.from_bytes(raw, "big") if raw is not None else 0
        for base in self._state:
            self._ensure(family_name(base, self.generation))
        for name in existing:  # a generation left over by a crash during an install
            base, gen = _generation_of(name)
            if base in self._state and gen != self.generation:
                self._drop(name)

    def _options(self) -> Options:
        return _options(self._cache, self._write_buffers)

    def memory_bytes(self) -> dict[str, int]:
        """What RocksDB holds in memory: the memtables of every family, and the block cache."""
        memtables = readers = 0
        for view in self._views.values():
            memtables += view.property_int_value("rocksdb.size-all-mem-tables") or 0
            readers += view.property_int_value("rocksdb.estimate-table-readers-mem") or 0
        return {"memtables": memtables, "table_readers": readers, "block_cache": self._cache.get_usage()}

    def _physical(self, name: str) -> str:
        return family_name(name, self.generation) if name in self._state else name

    def _map(self, name: str) -> None:
        assert self._rdict is not None
        self._views[name] = self._rdict.get_column_family(name)
        self._handles[name] = self._rdict.get_column_family_handle(name)

    def _ensure(self, name: str) -> None:
        assert self._rdict is not None
        if name not in self._views:
            self._rdict.create_column_family(name, self._options())
            self._map(name)

    def _drop(self, name: str) -> None:
        assert self._rdict is not None
        self._views.pop(name, None)
        self._handles.pop(name, None)
        self._rdict.drop_column_family(name)

    # --- generations of the state families ----------------------------------------------------

    def prepare_generation(self, sst_files: dict[str, list[Path]]) -> int:
        """Build the next generation of the state families from SST files (moved in, not
        copied; a family with no files starts empty). Nothing reads it until it is switched to."""
        gen = self.generation + 1
        options = _ingest_options()
        for base in sorted(self._state):
            name = family_name(base, gen)
            if name in self._views:
                self._drop(name)  # left by an install that did not finish
            self._ensure(name)
            files = sst_files.get(base, [])
            if files:
                try:
                    self._views[name].ingest_external_file([str(f) for f in files], options)
                except Exception as exc:  # rocksdict raises a bare Exception for every RocksDB status
                    raise StoreError(f"cannot ingest {base} into {self.path}: {exc}") from exc
        return gen

    def stage_generation(self, batch: WriteBatch, gen: int) -> None:
        """Put "`gen` is current" into the caller's batch (written with sync by the caller)."""
        batch.put(GENERATION_KEY, gen.to_bytes(8, "big"), self.handle(RAFT_META))

    def switch_generation(self, gen: int) -> None:
        """After the batch from `stage_generation` is durable: read `gen`, drop the one before."""
        old, self.generation = self.generation, gen
        for base in self._state:
            self._drop(family_name(base, old))

    def _check_format(self) -> None:
        meta = self.cf(RAFT_META)
        raw = meta.get(FORMAT_KEY)
        if raw is None:
            if not self._is_empty():
                raise StoreError(f"data directory {self.path} holds data but no raftsched format version")
            self._write_format_version()
            return
        version = decode_format_version(RAFT_META, FORMAT_KEY, raw)
        if version != FORMAT_VERSION:
            raise StoreError(
                f"data directory {self.path} has storage format version {version}; "
                f"this raftsched reads version {FORMAT_VERSION} only"
            )

    def _is_empty(self) -> bool:
        for view in self._views.values():
            it = view.iter()
            it.seek_to_first()
            if it.valid():
                return False
        return True

    def _write_format_version(self) -> None:
        batch = self.batch()
        batch.put(FORMAT_KEY, encode_format_version(FORMAT_KEY, FORMAT_VERSION), self.handle(RAFT_META))
        self.write(batch, sync=True)

    # --- public surface -----------------------------------------------------------------------

    def column_families(self) -> frozenset[str]:
        """The families by their logical names (a state family without its generation)."""
        return frozenset(_generation_of(name)[0] for name in self._views)

    def cf(self, name: str) -> Rdict:
        """A read view of one column family (raw bytes keys and values); a state family's
        current generation."""
        try:
            return self._views[self._physical(name)]
        except KeyError:
            raise self._unknown(name) from None

    def handle(self, name: str) -> ColumnFamily:
        """The handle to pass to `WriteBatch.put/delete/delete_range` for this column family."""
        try:
            return self._handles[self._physical(name)]
        except KeyError:
            raise self._unknown(name) from None

    def batch(self) -> WriteBatch:
        return WriteBatch(raw_mode=True)

    def write(self, batch: WriteBatch, *, sync: bool) -> None:
        """Apply `batch` atomically; with `sync`, return only once it is on stable storage."""
        if self._rdict is None:
            raise StoreError(f"data directory {self.path} is closed")
        try:
            self._rdict.write(batch, self._sync_opts if sync else self._async_opts)
        except Exception as exc:  # rocksdict raises a bare Exception for every RocksDB status
            raise StoreError(f"write to {self.path} failed: {exc}") from exc

    def sync_wal_files(self) -> None:
        """fdatasync every WAL file written since its last sync. For a worker thread: it makes
        only OS calls, which release the GIL (rocksdict holds it for a whole synced write), so
        the event loop keeps working during the fsync. RocksDB has already handed unsynced
        writes to the OS, so syncing the files makes them durable, as a synced write would."""
        seen: dict[str, int] = {}
        for entry in os.scandir(self.path):
            name = entry.name
            if not (name.endswith(".log") and name[:-4].isdigit()):
                continue
            # RocksDB deletes a WAL once the memtables it covers are flushed to (synced) SST
            # files: one that vanishes while we look needs no sync.
            try:
                size = entry.stat().st_size
                seen[name] = size
                if self._wal_synced.get(name) == size:
                    continue
                fd = self._wal_fds.get(name)
                if fd is None:
                    fd = self._wal_fds[name] = os.open(entry.path, os.O_RDONLY)
                    _fsync_dir(self.path)  # a new WAL file: make its directory entry durable too
            except FileNotFoundError:
                continue
            os.fdatasync(fd)
            self._wal_synced[name] = size
        for name in [n for n in self._wal_fds if n not in seen]:
            os.close(self._wal_fds.pop(name))
            self._wal_synced.pop(name, None)

    def sync_wal(self) -> None:
        """Make every earlier write durable, including those written without sync."""
        if self._rdict is None:
            raise StoreError(f"data directory {self.path} is closed")
        self._rdict.flush_wal(True)

    def close(self) -> None:
        """Close RocksDB, then release the directory lock. Safe to call twice."""
        self._views.clear()
        self._handles.clear()
        if self._rdict is not None:
            rdict, self._rdict = self._rdict, None
            rdict.close()
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> NodeDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _unknown(self, name: str) -> StoreError:
        if self._rdict is None:
            return StoreError(f"data directory {self.path} is closed")
        return StoreError(f"unknown column family {name!r} in {self.path} (have {sorted(self._views)})")


def _ingest_options() -> IngestExternalFileOptions:
    options = IngestExternalFileOptions()
    options.set_move_files(True)  # the files are ours (extracted from a received snapshot): link them
    return options


def _options(cache: Cache | None = None, write_buffers: WriteBufferManager | None = None) -> Options:
    options = Options(raw_mode=True)
    if cache is not None and write_buffers is not None:
        options.set_write_buffer_size(MEMTABLE_BYTES)
        options.set_write_buffer_manager(write_buffers)
        table = BlockBasedOptions()
        table.set_block_cache(cache)
        options.set_block_based_table_factory(table)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    # Only a torn last record (a write cut by a crash, never acknowledged) may be dropped on
    # recovery; corruption in the middle of the WAL must stop the node, not silently forget
    # synced entries or a vote (RocksDB's default point-in-time mode would drop them).
    options.set_wal_recovery_mode(DBRecoveryMode.tolerate_corrupted_tail_records())
    return options


def _write_options(*, sync: bool) -> WriteOptions:
    opts = WriteOptions()
    opts.sync = sync
    return opts


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _existing_column_families(path: Path) -> set[str]:
    # RocksDB refuses to open a database unless every family it holds is named.
    if not (path / "CURRENT").exists():
        return set()
    try:
        return set(Rdict.list_cf(str(path), Options(raw_mode=True)))
    except Exception as exc:  # rocksdict raises a bare Exception for every RocksDB status
        raise StoreError(f"cannot list column families in {path}: {exc}") from exc


def _acquire_lock(path: Path) -> int:
    """flock `LOCK.raftsched` (held until close) and write our pid in it for the error message."""
    lock_path = path / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise StoreError(f"data directory {path} is in use by another process (pid {holder})") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> str:
    # Only feeds an error message: an unreadable pid must not hide the real error (the lock).
    with contextlib.suppress(OSError):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return text
    return "unknown"

"""`NodeDB`: the one RocksDB directory holding all durable state of a node.

Column families: `raft_log` and `raft_meta` (owned by `RaftStore`) plus whatever the caller names
(the state machine's `sm_*` families). One `WriteBatch` may span several families, which is how
the state machine writes its data and its applied index atomically (SPEC §7).

rocksdict keeps the database open while any view, handle or iterator of it is alive, so `NodeDB`
owns the views and handles: callers fetch them with `cf()` / `handle()` when needed and must not
keep them past `close()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

from rocksdict import ColumnFamily, DBRecoveryMode, Options, Rdict, WriteBatch, WriteOptions

from raftsched.storage.codec import decode_format_version, encode_format_version
from raftsched.storage.errors import StoreError

RAFT_LOG = "raft_log"
RAFT_META = "raft_meta"
FORMAT_VERSION = 1
FORMAT_KEY = b"format_version"
LOCK_FILE = "LOCK.raftsched"
_DEFAULT_CF = "default"


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
        try:
            self._open({RAFT_LOG, RAFT_META, *column_families})
            self._check_format()
        except BaseException:
            self.close()
            raise

    def _open(self, wanted: set[str]) -> None:
        names = wanted | _existing_column_families(self.path)
        names.discard(_DEFAULT_CF)
        options = _options()
        try:
            self._rdict = Rdict(str(self.path), options, column_families={n: _options() for n in names})
        except Exception as exc:  # rocksdict raises a bare Exception for every RocksDB status
            raise StoreError(f"cannot open RocksDB in {self.path}: {exc}") from exc
        for name in names:
            self._views[name] = self._rdict.get_column_family(name)
            self._handles[name] = self._rdict.get_column_family_handle(name)

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
        return frozenset(self._views)

    def cf(self, name: str) -> Rdict:
        """A read view of one column family (raw bytes keys and values)."""
        try:
            return self._views[name]
        except KeyError:
            raise self._unknown(name) from None

    def handle(self, name: str) -> ColumnFamily:
        """The handle to pass to `WriteBatch.put/delete/delete_range` for this column family."""
        try:
            return self._handles[name]
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
            size = entry.stat().st_size
            seen[name] = size
            if self._wal_synced.get(name) == size:
                continue
            fd = self._wal_fds.get(name)
            if fd is None:
                fd = self._wal_fds[name] = os.open(entry.path, os.O_RDONLY)
                _fsync_dir(self.path)  # a new WAL file: make its directory entry durable too
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


def _options() -> Options:
    options = Options(raw_mode=True)
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

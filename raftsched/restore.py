"""`raftsched snapshot restore`: seed the data directory of one node of a new cluster from a backup,
as etcd's restore does. Run it once per new node, with the same --peers on each.

A format-2 backup (a state snapshot bundle) is ingested as the node's state; a format-1 backup
(raftsched 0.1) is written record by record and then migrated like any old data directory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from raftsched.raft.messages import ConfigState, HardState, SnapshotMeta
from raftsched.storage import bundle
from raftsched.storage.backup import MAGIC, BackupError, BackupHeader, decode_backup, header_from_info
from raftsched.storage.db import NodeDB
from raftsched.storage.errors import StoreError
from raftsched.storage.members import save_addresses
from raftsched.storage.raft_store import RaftStore

Progress = Callable[[str], None]


def restore_snapshot(file: str | Path, data_dir: str | Path, node_id: str, peers: dict[str, str],
                     progress: Progress = lambda step: None) -> int:
    """Write a new node's data directory from `file`; returns the restored index.

    Raises BackupError (a ValueError) for a damaged file and OSError for file-system trouble;
    nothing is left behind unless the whole backup checks out and is written.
    """
    if node_id not in peers:
        raise BackupError(f"--peers must include this node's id {node_id!r}")
    path = Path(file)
    target = Path(data_dir)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"data directory {target} is not empty: restore only into a new directory")
    try:
        if _starts_with(path, MAGIC):
            progress("reading a format-1 backup")
            return _restore_v1(path, target, node_id, peers)
        if bundle.is_bundle(path):
            return _restore_bundle(path, target, node_id, peers, progress)
        raise BackupError(f"{path} is not a raftsched backup (neither format 1 nor format {bundle.FORMAT})")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # a half-written directory must not be started
        raise


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def _restore_bundle(path: Path, target: Path, node_id: str, peers: dict[str, str], progress: Progress) -> int:
    from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState

    progress("checking every checksum")
    try:
        trailer = bundle.verify(path)
    except bundle.BundleError as err:
        raise BackupError(str(err)) from None
    header = header_from_info(trailer.info)
    work = Path(tempfile.mkdtemp(prefix="raftsched-restore-"))
    try:
        progress("extracting the state")
        files = bundle.extract(path, trailer, work)
        db = NodeDB(target, column_families=COLUMN_FAMILIES)
        try:
            progress("ingesting the state")
            generation = db.prepare_generation(files)
            batch = db.batch()
            db.stage_generation(batch, generation)
            db.write(batch, sync=True)
            db.switch_generation(generation)
            try:
                state = SchedulerState(db)  # a state of an older format is migrated here
            except StoreError as err:
                raise BackupError(str(err)) from None
            _seed(db, state.applied_index, header, node_id, peers)
        finally:
            db.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return header.index


def _restore_v1(path: Path, target: Path, node_id: str, peers: dict[str, str]) -> int:
    from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState

    header, data = decode_backup(path.read_bytes())
    db = NodeDB(target, column_families=COLUMN_FAMILIES)
    try:
        state = SchedulerState(db)
        try:
            state.restore(data)  # format-1 records; reloading migrates them to this format
        except StoreError as err:
            raise BackupError(str(err)) from None
        _seed(db, state.applied_index, header, node_id, peers)
    finally:
        db.close()
    return header.index


def _seed(db: NodeDB, applied: int, header: BackupHeader, node_id: str, peers: dict[str, str]) -> None:
    """Bootstrap the Raft store at the backup's index, with the new cluster's members."""
    if applied != header.index:
        raise BackupError(f"backup header says index {header.index}, its data is at {applied}")
    store = RaftStore(db)
    config = ConfigState(voters=frozenset(peers))
    store.bootstrap(config)
    meta = SnapshotMeta(header.index, header.term, config)
    store.save(HardState(term=header.term, commit=header.index), [], meta)
    save_addresses(db, dict(peers))

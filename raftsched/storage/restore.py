"""`raftsched snapshot restore`: seed the data directory of one node of a new cluster from a backup,
as etcd's restore does. Run it once per new node, with the same --peers on each."""

from __future__ import annotations

import shutil
from pathlib import Path

from raftsched.raft.messages import ConfigState, HardState, SnapshotMeta
from raftsched.storage.backup import BackupError, BackupHeader, decode_backup
from raftsched.storage.db import NodeDB
from raftsched.storage.members import save_addresses
from raftsched.storage.raft_store import RaftStore


def restore_snapshot(file: str | Path, data_dir: str | Path, node_id: str, peers: dict[str, str]) -> int:
    """Write a new node's data directory from `file`; returns the restored index.

    Raises BackupError (a ValueError) for a damaged file and OSError for file-system trouble;
    nothing is written unless the whole backup checks out.
    """
    if node_id not in peers:
        raise BackupError(f"--peers must include this node's id {node_id!r}")
    header, data = decode_backup(Path(file).read_bytes())
    target = Path(data_dir)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"data directory {target} is not empty: restore only into a new directory")
    try:
        _write(target, header, data, node_id, peers)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # a half-written directory must not be started
        raise
    return header.index


def _write(target: Path, header: BackupHeader, data: bytes, node_id: str, peers: dict[str, str]) -> None:
    from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState

    db = NodeDB(target, column_families=COLUMN_FAMILIES)
    try:
        state = SchedulerState(db)
        state.restore(data)
        if state.applied_index != header.index:
            raise BackupError(f"backup header says index {header.index}, its data is at {state.applied_index}")
        store = RaftStore(db)
        config = ConfigState(voters=frozenset(peers))
        store.bootstrap(config)
        meta = SnapshotMeta(header.index, header.term, config)
        store.save(HardState(term=header.term, commit=header.index), [], meta)
        save_addresses(db, dict(peers))
    finally:
        db.close()

"""Fixtures for the RocksDB storage tests: a data directory, a NodeDB on it, a RaftStore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import VOTERS

from raftsched.storage import NodeDB, RaftStore


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node"


@pytest.fixture
def db(data_dir: Path) -> Iterator[NodeDB]:
    node_db = NodeDB(data_dir)
    yield node_db
    node_db.close()


@pytest.fixture
def store(db: NodeDB) -> RaftStore:
    raft_store = RaftStore(db)
    raft_store.bootstrap(VOTERS)
    return raft_store

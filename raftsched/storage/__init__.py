"""RocksDB storage of a node: the Raft log, hard state, snapshot meta and state machine families."""

from raftsched.storage.db import RAFT_LOG, RAFT_META, NodeDB
from raftsched.storage.errors import CorruptionError, StoreError
from raftsched.storage.raft_store import RaftStore

__all__ = ["RAFT_LOG", "RAFT_META", "CorruptionError", "NodeDB", "RaftStore", "StoreError"]

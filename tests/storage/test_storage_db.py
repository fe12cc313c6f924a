"""NodeDB: column families, the directory lock, the format version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raftsched.storage import RAFT_META, NodeDB, StoreError
from raftsched.storage.codec import encode_format_version
from raftsched.storage.db import FORMAT_KEY, LOCK_FILE

REPO = Path(__file__).resolve().parents[2]


def test_column_families_are_created_and_kept(data_dir: Path) -> None:
    with NodeDB(data_dir, column_families=["sm_jobs", "sm_meta"]) as db:
        assert db.column_families() == {"raft_log", "raft_meta", "sm_jobs", "sm_meta"}
        batch = db.batch()
        batch.put(b"job-1", b"queued", db.handle("sm_jobs"))
        batch.put(b"applied", b"\x00" * 8, db.handle("sm_meta"))
        db.write(batch, sync=True)
    with NodeDB(data_dir) as db:  # families on disk are opened even when not named
        assert db.column_families() >= {"sm_jobs", "sm_meta"}
        assert db.cf("sm_jobs")[b"job-1"] == b"queued"
        with pytest.raises(StoreError, match="unknown column family 'nope'"):
            db.cf("nope")


def test_second_open_in_same_process_is_refused(data_dir: Path) -> None:
    with NodeDB(data_dir):
        message = f"data directory {data_dir} is in use by another process \\(pid {os.getpid()}\\)"
        with pytest.raises(StoreError, match=message):
            NodeDB(data_dir)
        assert (data_dir / LOCK_FILE).read_text().strip() == str(os.getpid())
    NodeDB(data_dir).close()  # released on close


def test_second_open_from_another_process_is_refused(data_dir: Path) -> None:
    script = (
        "import sys\n"
        "from raftsched.storage import NodeDB, StoreError\n"
        "try:\n"
        "    NodeDB(sys.argv[1])\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with NodeDB(data_dir):
        done = subprocess.run(
            [sys.executable, "-c", script, str(data_dir)], capture_output=True, text=True, env=env, timeout=60
        )
    assert done.returncode == 3, done.stderr
    assert f"is in use by another process (pid {os.getpid()})" in done.stdout


def test_closed_db_refuses_use(data_dir: Path) -> None:
    db = NodeDB(data_dir)
    db.close()
    db.close()  # idempotent
    with pytest.raises(StoreError, match="is closed"):
        db.cf(RAFT_META)
    with pytest.raises(StoreError, match="is closed"):
        db.write(db.batch(), sync=True)


def test_other_format_version_is_refused(data_dir: Path) -> None:
    with NodeDB(data_dir) as db:
        db.cf(RAFT_META)[FORMAT_KEY] = encode_format_version(FORMAT_KEY, 2)
    with pytest.raises(StoreError, match="has storage format version 2; this raftsched reads version 1"):
        NodeDB(data_dir)
    # The refused open released the lock: a second try fails the same way, not with "in use".
    with pytest.raises(StoreError, match="has storage format version 2"):
        NodeDB(data_dir)


def test_data_without_format_version_is_refused(data_dir: Path) -> None:
    with NodeDB(data_dir) as db:
        del db.cf(RAFT_META)[FORMAT_KEY]
        db.cf(RAFT_META)[b"hard_state"] = b"x"
    with pytest.raises(StoreError, match="holds data but no raftsched format version"):
        NodeDB(data_dir)

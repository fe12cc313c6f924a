"""Upgrade in place: a state machine written by raftsched 0.1 (format 1, tests/fixtures) is migrated
once to this format, with every index a fresh format-2 state would have; a newer format is refused."""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import pytest
from sm_harness import check_indexes

from raftsched.state import keys
from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState
from raftsched.state.migrate import STATE_FORMAT, migrate
from raftsched.storage.db import NodeDB
from raftsched.storage.errors import StoreError
from raftsched.v1 import jobs_pb2

J = jobs_pb2
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "v1-node.tar.gz"


@pytest.fixture
def v1_dir(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "n1"


def test_a_format_1_state_is_migrated_once_with_every_index(v1_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "raftsched.state.migrate")
    with NodeDB(v1_dir, column_families=COLUMN_FAMILIES) as db:
        state = SchedulerState(db)
        check_indexes(state)  # the indexes, counts and memory a format-2 state has
        assert state.job_counts()["SUCCEEDED"] == 7 and state.job_counts()["QUEUED"] == 3
        assert state.job_by_key("key-4").id == "j5"
        assert db.cf(keys.META).get(b"format") == keys.u64(STATE_FORMAT)
        before = state.fingerprint()
    assert sum("migrated the state machine" in r.message for r in caplog.records) == 1
    caplog.clear()
    with NodeDB(v1_dir, column_families=COLUMN_FAMILIES) as db:
        assert SchedulerState(db).fingerprint() == before
    assert not caplog.records


def test_a_migration_cut_short_runs_again_to_the_same_state(v1_dir: Path) -> None:
    with NodeDB(v1_dir, column_families=COLUMN_FAMILIES) as db:
        migrated = SchedulerState(db).fingerprint()
        batch = db.batch()
        batch.put(b"format", keys.u64(1), db.handle(keys.META))  # as if killed before the last write
        db.write(batch, sync=True)
        migrate(db, 1)  # idempotent: the converted keys are recognised, the indexes rewritten
        assert SchedulerState(db).fingerprint() == migrated


def test_a_newer_format_is_refused_naming_both_versions(v1_dir: Path) -> None:
    with NodeDB(v1_dir, column_families=COLUMN_FAMILIES) as db:
        batch = db.batch()
        batch.put(b"format", keys.u64(9), db.handle(keys.META))
        db.write(batch, sync=True)
        with pytest.raises(StoreError, match=r"format 9.*formats 1 to 2.*operations\.md"):
            SchedulerState(db)

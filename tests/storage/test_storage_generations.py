"""A snapshot install replaces the whole state atomically: the new state is built as the next
generation of the state families beside the old one, and one synced batch switches to it. A crash
(the process gone at any point of the install) leaves either the old state or the new one whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raftsched.state import commands as c
from raftsched.state.machine import COLUMN_FAMILIES, SchedulerState
from raftsched.storage import bundle
from raftsched.storage.db import NodeDB
from raftsched.v1 import jobs_pb2

J = jobs_pb2


def make_state(path: Path, jobs: int) -> bytes:
    """A node directory holding `jobs` queued jobs; returns the state's fingerprint."""
    with NodeDB(path, column_families=COLUMN_FAMILIES) as db:
        state = SchedulerState(db)
        specs = [J.JobSpec(handler="noop", idempotency_key=f"k{i}") for i in range(jobs)]
        state.apply([(1, c.encode(c.submit(*specs), time_ms=1_700_000_000_000))])
        return state.fingerprint()


def export(path: Path, out: Path) -> bundle.Trailer:
    """Run the exporter as the node does: another process, the directory open elsewhere."""
    with NodeDB(path, column_families=COLUMN_FAMILIES) as db:  # held open, as by a running node
        subprocess.run([sys.executable, "-m", "raftsched.storage.export", "--data-dir", str(path),
                        "--generation", str(db.generation), "--families", ",".join(COLUMN_FAMILIES),
                        "--out", str(out), "--work", str(out.parent / "work")], check=True, capture_output=True)
    return bundle.verify(out)


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, bytes, bundle.Trailer]:
    fingerprint = make_state(tmp_path / "leader", 500)
    out = tmp_path / "snap.rss"
    return out, fingerprint, export(tmp_path / "leader", out)


def test_an_install_switches_to_exactly_the_exported_state(tmp_path: Path, source: tuple) -> None:
    snap, fingerprint, trailer = source
    old = make_state(tmp_path / "follower", 3)
    assert old != fingerprint
    with NodeDB(tmp_path / "follower", column_families=COLUMN_FAMILIES) as db:
        gen = db.prepare_generation(bundle.extract(snap, trailer, tmp_path / "x"))
        batch = db.batch()
        db.stage_generation(batch, gen)
        db.write(batch, sync=True)
        db.switch_generation(gen)
        assert SchedulerState(db).fingerprint() == fingerprint
    with NodeDB(tmp_path / "follower", column_families=COLUMN_FAMILIES) as db:
        assert db.generation == 1 and SchedulerState(db).fingerprint() == fingerprint
        assert db.column_families() >= set(COLUMN_FAMILIES)


def test_a_crash_before_the_switch_leaves_the_old_state(tmp_path: Path, source: tuple) -> None:
    snap, _, trailer = source
    old = make_state(tmp_path / "follower", 3)
    with NodeDB(tmp_path / "follower", column_families=COLUMN_FAMILIES) as db:
        db.prepare_generation(bundle.extract(snap, trailer, tmp_path / "x"))  # then the process dies
    with NodeDB(tmp_path / "follower", column_families=COLUMN_FAMILIES) as db:
        assert db.generation == 0 and SchedulerState(db).fingerprint() == old
        leftovers = [name for name in db._views if "@" in name]
        assert leftovers == []  # the half-built generation was dropped at open


def test_a_crash_after_the_switch_leaves_the_new_state(tmp_path: Path, source: tuple) -> None:
    snap, fingerprint, trailer = source
    make_state(tmp_path / "follower", 3)
    with NodeDB(tmp_path / "follower", column_families=COLUMN_FAMILIES) as db:
        gen = db.prepare_generation(bundle.extract(snap, trailer, tmp_path / "x"))
        batch = db.batch()
        db.stage_generation(batch, gen)
        db.write(batch, sync=True)  # then the process dies before dropping generation 0
    with NodeDB(tmp_path / "follower", column_families=COLUMN_FAMILIES) as db:
        assert db.generation == 1 and SchedulerState(db).fingerprint() == fingerprint
        assert not [name for name in db._views if name in COLUMN_FAMILIES]  # generation 0 dropped


@pytest.mark.parametrize("damage", ["truncate", "flip", "trailer"])
def test_a_damaged_snapshot_file_is_refused_naming_what_is_wrong(source: tuple, damage: str) -> None:
    snap, _, trailer = source
    data = bytearray(snap.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[trailer.families[0].offset + 100] ^= 0x40
    else:
        data[trailer.data_bytes + 5] ^= 0x01
    snap.write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match=r"checksum|truncated|magic|trailer"):
        bundle.verify(snap)

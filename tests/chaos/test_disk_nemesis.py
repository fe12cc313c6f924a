"""The disk nemesis's damage and the node's answer to it, per corruption kind, against a real
single-node data directory that was killed -9 mid-write (so its WAL holds data): the node either
refuses to start with a message naming the damaged file and the runbook, or starts."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults_disk import delete_file, flip_bits, judge_refusal, refusal, rocksdb_files, truncate_wal
from integration.cluster import FAST

from raftsched.client import Client
from raftsched.testing.procs import free_port_range
from raftsched.v1 import jobs_pb2

pytestmark = [pytest.mark.integration]
RAFTSCHED = str(Path(sys.executable).with_name("raftsched"))


def _node(data: Path, port: int) -> subprocess.Popen[str]:
    addr = f"127.0.0.1:{port}"
    return subprocess.Popen([RAFTSCHED, "node", "--id", "n1", "--listen", addr, "--data-dir", str(data),
                             "--peers", f"n1={addr}", *FAST], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> str:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=10)
    return out


@pytest.fixture(scope="module")
def crashed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node's data directory with acknowledged jobs in its WAL, killed -9."""
    data = tmp_path_factory.mktemp("disk") / "n1"
    (port,) = free_port_range(1)
    proc = _node(data, port)
    try:
        with Client([f"127.0.0.1:{port}"], timeout=10.0) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.submit_job(jobs_pb2.JobSpec(name="j0", handler="noop"))
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            for i in range(1, 40):
                client.submit_job(jobs_pb2.JobSpec(name=f"j{i}", handler="noop"))
    finally:
        _stop(proc)
    assert rocksdb_files(data, (".log",)), "the killed node left no WAL with data"
    return data


def _start_damaged(src: Path) -> tuple[str, str]:
    """("refused", message) or ("started", "")."""
    (port,) = free_port_range(1)
    proc = _node(src, port)
    deadline = time.monotonic() + 4  # a refusal comes within about a second
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    if proc.poll() is None:
        _stop(proc, signal.SIGTERM)
        return "started", ""
    return "refused", refusal(_stop(proc))


@pytest.mark.parametrize("kind", ["truncate-wal", "bitflip-wal", "delete-sst-or-wal"])
def test_a_damaged_node_refuses_naming_the_file_and_runbook_or_starts(crashed_dir: Path, tmp_path: Path,
                                                                      kind: str) -> None:
    data = tmp_path / "n1"
    shutil.copytree(crashed_dir, data)
    rng = random.Random(7)
    if kind == "truncate-wal":
        damage = truncate_wal(data, rng)
    elif kind == "bitflip-wal":
        damage = flip_bits(data, rng, suffixes=(".log",))
    else:
        damage = delete_file(data, rng)
    assert damage is not None and damage["file"]
    outcome, message = _start_damaged(data)
    if kind == "bitflip-wal":  # RocksDB cannot replay a WAL record that fails its checksum
        assert outcome == "refused", "a node with a bit-flipped WAL started"
    if outcome == "refused":
        verdict = judge_refusal(message, str(damage["file"]))
        assert verdict["names_file"] and verdict["names_runbook"], f"{damage['file']}: {message!r}"


def test_damage_functions_touch_only_rocksdb_files(tmp_path: Path) -> None:
    (tmp_path / "000007.log").write_bytes(b"x" * 100)
    (tmp_path / "000009.sst").write_bytes(b"y" * 50)
    (tmp_path / "LOG").write_text("info log")
    (tmp_path / "CURRENT").write_text("MANIFEST-000001\n")
    cut = truncate_wal(tmp_path, random.Random(1))
    assert cut is not None and cut["file"] == "000007.log"
    assert (tmp_path / "000007.log").stat().st_size == 100 - cut["bytes_cut"]
    flipped = flip_bits(tmp_path, random.Random(2), suffixes=(".sst",))
    assert flipped is not None and flipped["file"] == "000009.sst"
    assert (tmp_path / "000009.sst").read_bytes() != b"y" * 50
    gone = delete_file(tmp_path, random.Random(3))
    assert gone is not None and not (tmp_path / gone["file"]).exists()
    assert (tmp_path / "LOG").read_text() == "info log" and (tmp_path / "CURRENT").exists()
    assert judge_refusal("raftsched: error: x 000009.sst (see docs/operations.md, 'A')", "000009.sst") == {
        "message": "raftsched: error: x 000009.sst (see docs/operations.md, 'A')", "names_file": True,
        "names_runbook": True}

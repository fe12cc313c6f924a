"""`scripts/bench/replication_floor.py`: the bare 3-process replicated write path the note of
issue 19 compares raftsched with. A smoke test: it starts its processes, measures every level it
is given beside the plain floor. It never asserts speed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration]


def test_replication_floor_measures_each_level_beside_the_floor(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench" / "replication_floor.py"), "--levels", "1,8",
         "--seconds", "1", "--window-ms", "1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    rows = re.findall(r"^\| (\d+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \|$", proc.stdout, re.M)
    assert [r[0] for r in rows] == ["1", "8"], proc.stdout
    for level, writes, cpu, floor, _ratio in rows:
        assert int(writes.replace(",", "")) > 0 and int(floor.replace(",", "")) > 0, (level, proc.stdout)
        assert int(cpu.replace(",", "")) > 0, (level, proc.stdout)

"""teeth.py's selection of bugs and its patch application (no harness run: CI runs one bug after
`make test`, see .ci/run)."""

from __future__ import annotations

import datetime
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _teeth() -> Any:
    spec = importlib.util.spec_from_file_location("teeth", ROOT / "jepsen-style" / "teeth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["teeth"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


teeth = _teeth()


def test_there_are_six_bugs_each_with_run_options() -> None:
    bugs = teeth.load_bugs()
    assert len(bugs) >= 6
    for bug in bugs:
        assert "--nemesis" in bug.run_args, bug.name
        assert "diff --git" in bug.path.read_text(), bug.name


def test_selection_by_name_all_and_date() -> None:
    bugs = teeth.load_bugs()
    assert teeth.select(bugs, every=True) == bugs
    assert [b.name for b in teeth.select(bugs, name=bugs[1].name)] == [bugs[1].name]
    day = datetime.date(2026, 12, 5)
    caught = [b for b in bugs if not b.known_miss]
    assert teeth.select(bugs, day=day) == [caught[day.toordinal() % len(caught)]]
    with pytest.raises(teeth.TeethError, match="no bug named 'nope'"):
        teeth.select(bugs, name="nope")
    with pytest.raises(teeth.TeethError, match="say which bug"):
        teeth.select(bugs)


def test_every_patch_applies_to_a_copy_and_leaves_the_tree_alone(tmp_path: Path) -> None:
    for i, bug in enumerate(teeth.load_bugs()):
        tree = teeth.make_tree(bug, tmp_path / str(i))
        changed = [line[len("+++ b/"):] for line in bug.path.read_text().splitlines() if line.startswith("+++ b/")]
        assert changed, bug.name
        for rel in changed:
            assert (tree / rel).read_text() != (ROOT / rel).read_text(), f"{bug.name}: {rel} unchanged"
            assert "planted bug" in (tree / rel).read_text()
            assert "planted bug" not in (ROOT / rel).read_text()


def test_a_patch_that_does_not_apply_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.patch"
    bad.write_text("teeth-args: --nemesis kill\n\ndiff --git a/raftsched/nope.py b/raftsched/nope.py\n"
                   "--- a/raftsched/nope.py\n+++ b/raftsched/nope.py\n@@ -1 +1 @@\n-x\n+y\n")
    with pytest.raises(teeth.TeethError, match=r"broken\.patch does not apply"):
        teeth.make_tree(teeth.parse_bug(bad), tmp_path / "t")

"""The nemesis's budget with the membership fault: a node out of the configuration counts as down
until it is a voter again, and two membership changes never overlap."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nemesis import KillNode, MembershipChange, Nemesis, Partition


def _load_runner() -> Any:
    """jepsen-style/run.py by path: a bare `import run` may find scripts/bench/run.py first."""
    path = Path(__file__).resolve().parents[2] / "jepsen-style" / "run.py"
    spec = importlib.util.spec_from_file_location("jepsen_style_run", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


parse_kinds = _load_runner().parse_kinds


def _nemesis() -> Nemesis:
    cluster: Any = SimpleNamespace(node_ids=["n1", "n2", "n3", "n4", "n5"])
    return Nemesis(cluster, history=None, kinds=["membership", "kill"], rng=random.Random(1))  # type: ignore[arg-type]


def test_a_removed_node_counts_as_down_and_changes_never_overlap() -> None:
    nem = _nemesis()
    change = MembershipChange()
    change.impairs = frozenset({"n2"})
    nem.active.append(change)
    assert not nem._budget_ok(MembershipChange())
    assert not nem._budget_ok(Partition())
    kill = KillNode()
    assert nem._budget_ok(kill) and kill.avoid == {"n2"}
    kill.impairs = frozenset({"n4"})
    nem.active.append(kill)
    assert not nem._budget_ok(KillNode())  # n2 out + n4 killed: the minority of 5 is used up


def test_a_change_still_being_undone_keeps_its_node_down() -> None:
    nem = _nemesis()
    change = MembershipChange()
    change.impairs = frozenset({"n2"})
    nem.stopping.append(change)
    assert not nem._budget_ok(MembershipChange())
    other = KillNode()
    other.impairs = frozenset({"n3"})
    nem.active.append(other)
    assert not nem._budget_ok(KillNode())


def test_membership_needs_five_nodes() -> None:
    assert parse_kinds("membership,kill", 3)[0] == ["kill"]
    assert parse_kinds("membership,kill", 5)[0] == ["membership", "kill"]

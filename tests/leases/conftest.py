"""`make_cluster(executors={"e1": 4, ...}, node_flags=FAST)`: a LeaseCluster per test, always torn
down (tasks included); the node and executor log tails are printed when the test failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from .harness import FAST, LeaseCluster, started_cluster


@pytest.fixture
def make_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., LeaseCluster]]:
    made: list[LeaseCluster] = []

    def make(executors: dict[str, int], node_flags: Sequence[str] = FAST) -> LeaseCluster:
        c = started_cluster(tmp_path / f"cluster{len(made)}", executors, node_flags)
        made.append(c)
        return c

    yield make
    failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))
    for c in made:
        if failed:
            print(c.logs())
        c.close()

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from state.sm_harness import Node


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "db")
    yield n
    n.close()

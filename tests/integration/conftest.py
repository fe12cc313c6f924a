"""Fixtures that start real clusters and always tear them down.

    make_cluster(size=3, timing=FAST, executors=0)  a started cluster with a leader, per test
    jobs_cluster                                      a shared 3-node cluster with 2 executors
                                                      (module scope) for tests that break nothing
    quiet_cluster                                     a shared 3-node cluster without executors

When a test fails, the tails of the node and executor logs are printed in its report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .cluster import FAST, Cluster


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


def _started(root: Path, size: int, timing: tuple[str, ...], executors: int, slots: int) -> Cluster:
    c = Cluster(root, size=size, timing=timing)
    try:
        c.start_all()
        c.wait_leader(30)
        for i in range(executors):
            c.start_executor(f"e{i + 1}", slots)
        if executors:
            c.wait_executors(*(f"e{i + 1}" for i in range(executors)))
    except BaseException:
        print(c.logs())
        c.close()
        raise
    return c


@pytest.fixture
def make_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(size: int = 3, timing: tuple[str, ...] = FAST, executors: int = 0, slots: int = 4) -> Cluster:
        c = _started(tmp_path / f"cluster{len(made)}", size, timing, executors, slots)
        made.append(c)
        return c

    yield make
    for c in made:
        if _failed(request):
            print(c.logs())
        c.close()


def _shared(tmp_path_factory: pytest.TempPathFactory, name: str, executors: int) -> Iterator[Cluster]:
    c = _started(tmp_path_factory.mktemp(name), 3, FAST, executors, 4)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def _jobs_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _shared(tmp_path_factory, "jobs", executors=2)


@pytest.fixture(scope="module")
def _quiet_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _shared(tmp_path_factory, "quiet", executors=0)


@pytest.fixture
def jobs_cluster(request: pytest.FixtureRequest, _jobs_cluster: Cluster) -> Iterator[Cluster]:
    yield _jobs_cluster
    if _failed(request):
        print(_jobs_cluster.logs())


@pytest.fixture
def quiet_cluster(request: pytest.FixtureRequest, _quiet_cluster: Cluster) -> Iterator[Cluster]:
    yield _quiet_cluster
    if _failed(request):
        print(_quiet_cluster.logs())

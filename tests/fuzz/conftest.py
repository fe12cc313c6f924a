"""The fuzz suite's cluster: three real nodes on 127.0.0.1 in insecure mode (every service open
on every port, as in the probe of issue 14), with a short corruption-check interval so that a
replica diverging under fuzzed input raises a CORRUPT alarm within the run. No executor runs:
fuzzed jobs carry arbitrary argv, and nothing must ever execute them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from integration.cluster import FAST, Cluster

CHECK_INTERVAL = ("--corrupt-check-interval", "3s")


@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("fuzz"), size=3, timing=FAST, node_flags=CHECK_INTERVAL)
    try:
        c.start_all()
        c.wait_leader(30)
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, fuzz_cluster: Cluster) -> Iterator[Cluster]:
    yield fuzz_cluster
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        print(fuzz_cluster.logs())

"""Shared by every test directory.

GRPC_ENABLE_FORK_SUPPORT=false before grpc is imported, as the `raftsched` entry point does for its
processes (raftsched/cli/__init__.py says why): tests run executors in process, which spawn tasks
while grpc streams are busy. Importing raftsched itself no longer sets it.

Each test's report of each phase is kept on its item (`item.rep_call`), so a fixture can print the
cluster's logs only when the test failed.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report




# The seed sweeps are about 40 % of the suite's CPU, in parts of 10-20 s. `make test` (pytest-xdist,
# `--dist loadscope --no-loadscope-reorder`) hands out each part on its own and every other module
# whole (its shared cluster is started once), the parts first: the workers run them side by side
# while nothing waits on a timer, and the cluster tests that follow never share the cores with
# three CPU-bound sweeps. The tests themselves are unchanged.
CPU_SWEEPS = ("tests/scheduler/test_simulation.py::test_seed_sweep", "tests/raft/test_simulation.py::")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    sweeps = [item for item in items if item.nodeid.startswith(CPU_SWEEPS)]
    chosen = set(map(id, sweeps))
    items[:] = sweeps + [item for item in items if id(item) not in chosen]


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SweepPartsApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith(CPU_SWEEPS) else super()._split_scope(nodeid)

    return SweepPartsApart(config, log)

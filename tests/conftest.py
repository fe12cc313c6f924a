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

"""Shared by every test directory: each test's report of each phase is kept on its item
(`item.rep_call`), so a fixture can print the cluster's logs only when the test failed."""

from __future__ import annotations

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report

"""Fixtures for the console tests: a real cluster with the console in front of it, and a browser.

    stack     (module) 3 nodes (fast Raft timers), executors e1 (4 slots) and e2 (2 slots, label
              pool=spare, so only jobs asking for it run there), and `raftsched console`
    browser   (module) headless Firefox ESR over Marionette; skipped here when Firefox is missing,
              a failure under CI (CI=true), where .ci/run installs it

Logs of every process are printed when a test fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from integration.cluster import Cluster

from .harness import Browser, ConsoleProcess, firefox_missing


def failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


@dataclass
class Stack:
    cluster: Cluster
    console: ConsoleProcess

    @property
    def url(self) -> str:
        return self.console.url

    def logs(self) -> str:
        return self.cluster.logs() + "\n----- console\n" + self.console.tail(60)


@pytest.fixture(scope="module")
def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("console")
    cluster = Cluster(root)
    console = ConsoleProcess(cluster.cluster, root / "console.log")
    try:
        cluster.start_all()
        cluster.wait_leader(30)
        cluster.start_executor("e1", 4)
        cluster.start_executor("e2", 2, "--label", "pool=spare")
        cluster.wait_executors("e1", "e2")
        console.start()
        yield Stack(cluster, console)
    except BaseException:
        print(cluster.logs(), console.tail(60))
        raise
    finally:
        console.stop()
        cluster.close()


@pytest.fixture
def stack(request: pytest.FixtureRequest, _stack: Stack) -> Iterator[Stack]:
    yield _stack
    if failed(request):
        print(_stack.logs())


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    missing = firefox_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    root: Path = tmp_path_factory.mktemp("firefox")
    b = Browser(root / "profile", root / "firefox.log")
    try:
        yield b
    finally:
        b.close()

"""The CLI as users run it: a real subprocess, one error line, the right exit code, no traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftsched.cli.dev import Child, Supervisor


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftsched.cli.main", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("raftsched: error: ")
    for word in words:
        assert word in lines[0]


def test_node_with_a_bad_flag_exits_2_naming_the_setting(tmp_path: Path) -> None:
    result = run_cli("node", "--id", "n1", "--data-dir", str(tmp_path), "--peers", "n1=127.0.0.1:7001",
                     "--heartbeat-ms", "5")
    assert_one_error_line(result, 2, "heartbeat_ms")


def test_bad_environment_value_is_named_too(tmp_path: Path) -> None:
    result = run_cli("node", "--id", "n1", "--data-dir", str(tmp_path), "--peers", "n1=127.0.0.1:7001",
                     env={"RAFTSCHED_ELECTION_MS": "soon"})
    assert_one_error_line(result, 2, "election_ms", "RAFTSCHED_ELECTION_MS")


def test_submit_without_handler_or_command_fails_before_any_connection() -> None:
    with socket.socket() as listener:  # a "cluster" that records whether anyone connected
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        address = "{}:{}".format(*listener.getsockname())
        result = run_cli("job", "submit", "--json", "--cluster", address)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert_one_error_line(result, 2, "--handler")


def test_unknown_flag_and_unreachable_cluster_are_one_line() -> None:
    assert_one_error_line(run_cli("job", "list", "--bogus"), 2, "--bogus")
    result = run_cli("status", "--cluster", "127.0.0.1:1", "--timeout", "1s")
    assert_one_error_line(result, 1, "unavailable")


def test_certs_init_refuses_a_directory_that_holds_certificates(tmp_path: Path) -> None:
    target = tmp_path / "tls"
    first = run_cli("certs", "init", "--dir", str(target))
    assert first.returncode == 0, first.stderr
    assert_one_error_line(run_cli("certs", "init", "--dir", str(target)), 1, "--force")
    assert run_cli("certs", "init", "--dir", str(target), "--force").returncode == 0


def test_supervisor_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"],
                                stdout=subprocess.PIPE, start_new_session=True)
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ready\n"  # the trap is in place before we signal
    polite = subprocess.Popen(["sleep", "30"], start_new_session=True)
    supervisor = Supervisor(tmp_path, [Child("stubborn", stubborn, tmp_path / "a"),
                                       Child("polite", polite, tmp_path / "b")])
    started = time.monotonic()
    supervisor.stop_all(grace=0.5)
    assert time.monotonic() - started < 5
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    stubborn.stdout.close()

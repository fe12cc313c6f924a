"""Processes and ports for every harness that starts real raftsched processes: the tests, the chaos
harness (jepsen-style/) and the benchmarks (scripts/bench/). One definition of each.

    free_port()            one free TCP port on 127.0.0.1
    free_ports(n)          n distinct free ports (held open together, so none is handed out twice)
    free_port_range(n)     n consecutive free ports below the usual ephemeral range
    Proc                   one long-running process in its own process group: start, stop (SIGTERM,
                           then SIGKILL of the group), kill9, pause/resume, restart with the same argv

A Proc's log gets a line `=== HH:MM:SS start #N: argv` before each start, so a test can find the
output of the latest start (`log_path.read_text().rsplit("=== ", 1)[-1]`).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
START_MARK = "=== "


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """n distinct free ports (held open together so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


_HANDED_OUT: set[int] = set()  # by free_port_range in this process


def free_port_range(count: int, lo: int = 20000, hi: int = 32000) -> list[int]:
    """`count` consecutive ports from a random base in [lo, hi), each checked free with a bind.
    Below the kernel's default ephemeral range (32768-60999), so an outgoing connection does not
    take one between the check and a restarted process binding it again. Never a port this process
    was given before: a cluster's ports are not bound yet when its metrics ports are picked, and
    a range that overlapped them made a node fail to start ("address already in use": make test,
    test_hostile_raft's cluster, metrics 29768-29770 against nodes 29770-29772)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(lo, hi - count)
        ports = list(range(base, base + count))
        if _HANDED_OUT.isdisjoint(ports) and all(_bindable(p) for p in ports):
            _HANDED_OUT.update(ports)
            return ports
    raise RuntimeError(f"no {count} consecutive free ports in {lo}..{hi}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass
class Proc:
    """One long-running process, in its own session and process group, output appended to log_path."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0

    @property
    def log(self) -> Path:
        return self.log_path

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen is not None else 0

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Proc:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            log.write(f"{START_MARK}{time.strftime('%H:%M:%S')} start #{self.starts + 1}: "
                      f"{' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.cwd)
        self.starts += 1
        self.paused = False
        return self

    def kill9(self) -> None:
        """SIGKILL the process and its group (tasks it started), then reap it."""
        if self.popen is None:
            return
        if self.popen.poll() is None:  # never signal a group whose leader was reaped: its id may be reused
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self.paused = False

    def pause(self, *, group: bool = False) -> None:
        """SIGSTOP the process (group=True: its whole group; else an executor's task guards stay awake)."""
        if self.alive():
            (os.killpg if group else os.kill)(self.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self, *, group: bool = False) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if group else os.kill)(self.pid, signal.SIGCONT)
        self.paused = False

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL of the whole group after `grace` seconds."""
        if self.popen is None:
            return
        if self.paused:
            self.resume(group=True)
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        self.kill9()

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

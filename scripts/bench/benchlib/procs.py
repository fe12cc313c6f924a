"""Every process the benchmark starts: tracked, each in its own process group, and ended at the end
(also on Ctrl-C or an exception). Ports are picked free on 127.0.0.1. Proc and the port helpers
are raftsched.testing.procs, shared with the tests and the chaos harness."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from raftsched.testing.procs import HOST, Proc, free_port, free_ports

__all__ = ["HOST", "Proc", "ProcessSet", "cpu_seconds", "free_port", "free_ports", "wait_port"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15 of stat)


@dataclass
class ProcessSet:
    """The processes of one run; stop_all() ends every one of them."""

    procs: list[Proc] = field(default_factory=list)

    def add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def stop_all(self, grace: float = 1.0) -> None:
        self.stop(self.procs, grace)

    @staticmethod
    def stop(procs: Iterable[Proc], grace: float = 1.0) -> None:
        """SIGTERM them all at once, then SIGKILL whatever still runs after `grace` seconds."""
        procs = list(procs)
        live = [p for p in procs if p.alive()]
        for p in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                if p.popen is not None:
                    p.popen.wait(max(0.0, deadline - time.monotonic()))
        for p in procs:
            p.kill9()


def wait_port(port: int, timeout: float) -> bool:
    """True once something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((HOST, port)) == 0:
                return True
        time.sleep(0.05)
    return False

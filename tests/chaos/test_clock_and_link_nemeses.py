"""The clock nemesis against a stub process under libfaketime, and the one-way and slow proxy
modes against a stub echo server through the real proxy code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cluster import FAKETIME_SHIM, LIBFAKETIME, faketime_env
from faults_clock import ClockFault, draw_step, read_offset
from faults_links import one_way_links
from proxy import Listener, Network, Shape

STUB = """
import sys, time
for line in sys.stdin:
    print(time.time() - time.monotonic(), flush=True)
    time.sleep(0.01)  # libfaketime breaks time.sleep unless the shim replaced it
"""


class _Stub:
    """A process whose wall-minus-monotonic reading is asked for over a pipe."""

    def __init__(self, offset_file: Path) -> None:
        env = {**faketime_env(offset_file), "PYTHONPATH": str(FAKETIME_SHIM)}
        self.p = subprocess.Popen([sys.executable, "-c", STUB], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=env)

    def skew(self) -> float:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write("?\n")
        self.p.stdin.flush()
        return float(self.p.stdout.readline())

    def close(self) -> None:
        self.p.kill()
        self.p.communicate(timeout=5)


@pytest.mark.skipif(not Path(LIBFAKETIME).exists(), reason="libfaketime missing: scripts/install-chaos-deps.sh")
def test_clock_faults_move_the_wall_clock_only(tmp_path: Path) -> None:
    clock_dir = tmp_path / "clock"
    cluster: Any = SimpleNamespace(faketime=True, node_ids=["n1"], executor_ids=[], faked=["n1"],
                                   clock_file=lambda name: clock_dir / f"{name}.faketime")
    stub = _Stub(cluster.clock_file("n1"))
    try:
        base = stub.skew()

        async def scenario() -> tuple[float, float, float, float]:
            step = ClockFault(action="jump-back")
            start = await step.start(cluster, random.Random(5))
            assert start is not None and start["offsets_s"]["n1"] < 0
            moved = stub.skew() - base
            await step.stop(cluster)
            back = stub.skew() - base
            drift = ClockFault(action="drift")
            await drift.start(cluster, random.Random(1))
            await asyncio.sleep(0.6)
            drifted = stub.skew() - base
            end = await drift.stop(cluster)
            return start["offsets_s"]["n1"], moved, back, drifted - end["reached_s"]

        offset, moved, back, drift_error = asyncio.run(scenario())
    finally:
        stub.close()
    assert abs(moved - offset) < 0.05, (moved, offset)  # wall moved by the offset, monotonic did not
    assert abs(back) < 0.05
    assert abs(drift_error) < 0.2
    assert read_offset(cluster.clock_file("n1")) == 0.0


def test_clock_steps_stay_in_range() -> None:
    rng = random.Random(3)
    steps = [draw_step(rng, "step") for _ in range(500)]
    assert all(1.0 <= abs(s) <= 600.0 for s in steps)
    assert any(s < 0 for s in steps) and any(s > 0 for s in steps)
    assert all(draw_step(rng, "jump-back") < 0 for _ in range(50))


def test_one_way_links_pair_each_direction() -> None:
    forward, back = one_way_links(["n1"], ["n2", "n3"])
    assert forward == [("n1", "n2"), ("n1", "n3")] and back == [("n2", "n1"), ("n3", "n1")]


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await r.read(1024):
            w.write(data)
            await w.drain()
    w.close()


async def _echo_through(net: Network, shape: Shape | None, payloads: int = 3) -> tuple[list[bytes], float]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target = server.sockets[0].getsockname()[1]
    lst = Listener(net, "a->b", "a", "b", target)
    port = await lst.start()
    if shape is not None:
        net.shapes[("a", "b")] = shape
    got: list[bytes] = []
    t0 = time.monotonic()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for i in range(payloads):
            w.write(b"m%d;" % i)
            await w.drain()
            try:
                got.append(await asyncio.wait_for(r.read(1024), 1.5))
            except TimeoutError:
                got.append(b"")
            except ConnectionError:
                got.append(b"")
                break
        w.close()
    finally:
        for conn in list(net.conns):
            conn.abort()
        await lst.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # let aborted transports finish closing
    return got, time.monotonic() - t0


def test_one_way_mode_delivers_requests_and_holds_replies() -> None:
    net = Network()
    got, _ = asyncio.run(_echo_through(net, Shape("one-way"), payloads=1))
    assert got == [b""]  # the echo server got it (replies held), the client heard nothing
    got, _ = asyncio.run(_echo_through(Network(), None, payloads=1))
    assert got == [b"m0;"]


def test_slow_mode_adds_latency_in_order() -> None:
    got, seconds = asyncio.run(_echo_through(Network(), Shape("slow", (150, 200)), payloads=3))
    assert b"".join(got) == b"m0;m1;m2;"
    assert seconds >= 3 * 0.15 * 2 - 0.05  # each round trip crosses the slow link twice


def test_lossy_slow_mode_resets_connections() -> None:
    net = Network()
    net.rng.seed(1)
    got, _ = asyncio.run(_echo_through(net, Shape("slow", (0, 1), loss=0.5), payloads=8))
    assert b"".join(got) != b"".join(b"m%d;" % i for i in range(8))
    assert net.counters["lost"] >= 1


def test_bad_shapes_are_refused() -> None:
    for args in (("sideways",), ("slow", (500, 50)), ("slow", (0, 10), 0.9)):
        with pytest.raises(ValueError):
            Shape.parse(*args)
    assert json.dumps(Shape.parse("slow", [50, 500], 0.01).delay_ms) == "[50, 500]"


CALLER = """
import socket, sys
port = int(sys.stdin.readline())
s = socket.create_connection(("127.0.0.1", port), timeout=3)
try:
    s.sendall(b"ping")
    print((s.recv(16) or b"closed").decode(), flush=True)
except OSError as e:
    print(type(e).__name__, flush=True)
"""


async def _call_as(net: Network, label: str, port: int) -> str:
    """What a separate process registered as `label` hears back through the proxy at `port`."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CALLER, stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE)
    net.sources[proc.pid] = label
    try:
        out, _ = await asyncio.wait_for(proc.communicate(b"%d\n" % port), 10)
    finally:
        net.sources.pop(proc.pid, None)
    return out.decode().strip()


def test_a_shared_proxy_applies_the_link_of_the_calling_process() -> None:
    """The `*->b` proxy a re-added node is reached at: each caller obeys its own link to b."""

    async def scenario() -> dict[str, str]:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        net = Network()
        shared = Listener(net, "*->b", "*", "b", server.sockets[0].getsockname()[1])
        port = await shared.start()
        try:
            net.set_modes([("n1", "b")], "drop")
            heard = {"n1": await _call_as(net, "n1", port), "n2": await _call_as(net, "n2", port)}
            r, w = await asyncio.open_connection("127.0.0.1", port)  # unregistered: the "*" link
            w.write(b"ping")
            heard["unregistered"] = (await asyncio.wait_for(r.read(16), 3)).decode()
            w.close()
            return heard
        finally:
            for conn in list(net.conns):
                conn.abort()
            await shared.close()
            server.close()
            await server.wait_closed()

    heard = asyncio.run(scenario())
    assert heard["n1"] in ("closed", "ConnectionResetError"), heard  # its link to b is cut
    assert heard["n2"] == "ping" and heard["unregistered"] == "ping", heard

"""Fuzzed requests on every RPC of every service, against a real 3-node cluster (issue 14, item 6).

Each batch sends hypothesis-made calls (`strategies.request`: messages built from the protobuf
descriptors, random bytes, truncated, bit-flipped or extended encodings) to random nodes. Each call
must end with a status a client can act on: OK or a definite refusal, never UNKNOWN or INTERNAL
(an exception no code path expected), and its error message must not echo a large input. After
each batch `checks.check_cluster` holds: every node alive, one leader, every replica's committed
log identical, no alarm, no traceback logged.

Budget: in `make test` the whole module takes about 8 s (RAFTSCHED_FUZZ_EXAMPLES calls per batch,
RAFTSCHED_FUZZ_BATCHES batches). `make fuzz` sets RAFTSCHED_FUZZ_SECONDS: batches then run until
that many seconds have passed. RAFTSCHED_FUZZ_SEED fixes the seed (the seed is printed on failure).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from integration.cluster import Cluster

from .checks import check_cluster
from .strategies import Request, request

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("RAFTSCHED_FUZZ_EXAMPLES", "300"))
BATCHES = int(os.environ.get("RAFTSCHED_FUZZ_BATCHES", "2"))
SECONDS = float(os.environ.get("RAFTSCHED_FUZZ_SECONDS", "0"))
SEED = int(os.environ.get("RAFTSCHED_FUZZ_SEED", "0")) or random.randrange(1 << 32)
CALL_TIMEOUT = 2.0
MAX_DETAILS = 2000  # an error names what is wrong; it never carries a large input back
BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


class Caller:
    """Raw-bytes calls to the cluster's nodes, one channel per node."""

    def __init__(self, c: Cluster) -> None:
        self.channels = {nid: grpc.insecure_channel(addr, options=OPTIONS) for nid, addr in c.addr.items()}

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def call(self, nid: str, req: Request) -> tuple[grpc.StatusCode, str]:
        channel, path, frames = self.channels[nid], req.path, req.frames
        client, server = req.method.client_streaming, req.method.server_streaming
        try:
            if not client and not server:
                channel.unary_unary(path)(frames[0], timeout=CALL_TIMEOUT)
            elif client and not server:
                channel.stream_unary(path)(iter(frames), timeout=CALL_TIMEOUT)
            else:
                make = channel.stream_stream(path) if client else channel.unary_stream(path)
                call = make(iter(frames) if client else frames[0], timeout=CALL_TIMEOUT)
                _read_some(call)
        except grpc.RpcError as err:
            return err.code(), err.details() or ""  # type: ignore[attr-defined]
        return grpc.StatusCode.OK, ""


def _read_some(call: Iterator[bytes], most: int = 3) -> None:
    """Read a few responses of a stream, then cancel it (a watch may never end by itself)."""
    for n, _ in enumerate(call, 1):
        if n >= most:
            call.cancel()  # type: ignore[attr-defined]
            return


def run_batch(c: Cluster, caller: Caller, batch_seed: int, examples: int) -> dict[str, int]:
    """One batch of fuzzed calls; returns how many ended with each status."""
    outcomes: dict[str, int] = {}
    nodes = random.Random(batch_seed)

    @seed(batch_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              phases=(Phase.generate, Phase.shrink), print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                     HealthCheck.filter_too_much])
    @given(req=request())
    def one(req: Request) -> None:
        nid = nodes.choice(c.ids)
        code, details = caller.call(nid, req)
        outcomes[code.name] = outcomes.get(code.name, 0) + 1
        assert code not in BAD_CODES, f"{req!r} to {nid}: {code.name}: {details[:500]}"
        assert len(details) <= MAX_DETAILS, f"{req!r} to {nid}: {code.name} with {len(details)} characters of details"
        # An error too large for the client's metadata limit shows as RESOURCE_EXHAUSTED on this side.
        assert "metadata" not in details.lower(), f"{req!r} to {nid}: {code.name}: {details[:500]}"

    one()
    return outcomes


def test_fuzzed_calls_on_every_rpc_leave_the_cluster_whole(cluster: Cluster) -> None:
    caller = Caller(cluster)
    started = time.monotonic()
    batch = 0
    try:
        while batch < BATCHES or (SECONDS and time.monotonic() - started < SECONDS):
            batch_seed = SEED + batch
            what = f"after fuzz batch {batch} (RAFTSCHED_FUZZ_SEED={SEED})"
            outcomes = run_batch(cluster, caller, batch_seed, EXAMPLES)
            check_cluster(cluster, what)
            print(f"batch {batch} seed {batch_seed}: {sorted(outcomes.items())}")
            batch += 1
    finally:
        caller.close()

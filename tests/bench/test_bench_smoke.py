"""The benchmark harness's pieces that need no cluster: percentile math, the hand-made etcd wire
format, the load generator and retry policy on fake requests, ratios and the table. Starting etcd
is marked slow and skipped where etcd is not installed."""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "bench"))

from benchlib import report, wire
from benchlib.loadgen import Histogram, Retrier, run_load

from raftsched.client.routing import Backoff

# --- histogram ----------------------------------------------------------------------------------


def test_percentiles_of_1_to_1000_ms_are_within_a_bucket() -> None:
    h = Histogram()
    for ms in range(1, 1001):
        h.record(ms / 1000)
    assert h.count == 1000
    assert h.percentile(50) == pytest.approx(0.500, rel=0.011)
    assert h.percentile(99) == pytest.approx(0.990, rel=0.011)
    assert h.percentile(0) == pytest.approx(0.001, rel=0.011)
    assert h.percentile(100) == pytest.approx(1.0)
    assert h.mean == pytest.approx(0.5005)
    assert (h.min, h.max) == (0.001, 1.0)


def test_percentile_never_leaves_the_recorded_range() -> None:
    h = Histogram()
    for _ in range(10):
        h.record(0.0123)
    assert h.percentile(50) == h.percentile(99) == 0.0123


def test_percentile_of_nothing_is_nan_and_bad_p_is_refused() -> None:
    assert math.isnan(Histogram().percentile(50))
    with pytest.raises(ValueError):
        Histogram().percentile(101)


def test_merge_adds_counts() -> None:
    a, b = Histogram(), Histogram()
    a.record(0.001)
    b.record(0.003)
    b.record(0.005)
    a.merge(b)
    assert (a.count, a.min, a.max) == (3, 0.001, 0.005)
    assert a.percentile(50) == pytest.approx(0.003, rel=0.011)


# --- etcd wire format -----------------------------------------------------------------------------


def test_put_request_matches_protobuf_bytes() -> None:
    # PutRequest{key: "foo", value: "bar"} as protoc's encoder writes it.
    assert wire.put_request(b"foo", b"bar") == b"\x0a\x03foo\x12\x03bar"
    # A 200-byte value takes a two-byte length varint (200 = 0xc8 0x01).
    assert wire.put_request(b"k", b"v" * 200) == b"\x0a\x01k\x12\xc8\x01" + b"v" * 200


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1])
def test_varint_round_trip(value: int) -> None:
    encoded = wire.varint(value)
    assert wire.read_varint(encoded, 0) == (value, len(encoded))


def test_varint_of_300_and_of_a_negative_int64() -> None:
    assert wire.varint(300) == b"\xac\x02"
    assert len(wire.varint(-1)) == 10


def test_etcd_status_reads_header_leader_and_indexes() -> None:
    header = wire.varint(1 << 3) + wire.varint(111) + wire.varint(2 << 3) + wire.varint(0xDEADBEEF)
    body = (wire.length_field(1, header) + wire.length_field(2, b"3.4.23") + wire.varint(4 << 3)
            + wire.varint(0xCAFE) + wire.varint(5 << 3) + wire.varint(42) + wire.varint(7 << 3) + wire.varint(41))
    assert wire.etcd_status(body) == {"member_id": 0xDEADBEEF, "leader": 0xCAFE, "raft_index": 42,
                                      "raft_term": 0, "raft_applied_index": 41}


# --- load generator and retries -----------------------------------------------------------------


async def test_run_load_keeps_one_request_in_flight_per_worker() -> None:
    in_flight = peak = 0

    async def op(worker: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1

    result = await run_load(op, 4, 0.3, warmup=0.05)
    assert peak == 4
    assert result.errors == 0
    assert 40 <= result.throughput <= 410  # 4 workers x ~100/s, generous for a busy machine
    assert result.latency.percentile(50) >= 0.01


async def test_run_load_counts_failures_and_stops_at_max_requests() -> None:
    calls = 0

    async def op(worker: int) -> None:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise RuntimeError("refused")

    result = await run_load(op, 2, 5.0, max_requests=10)
    assert calls == 10
    assert result.acked == 5 and result.errors == 5


async def test_retrier_moves_on_and_remembers_the_endpoint_that_answered() -> None:
    tried: list[str] = []

    async def attempt(endpoint: str) -> str:
        tried.append(endpoint)
        if endpoint == "a":
            raise ConnectionError("down")
        return endpoint

    retrier = Retrier(["a", "b", "c"], backoff=Backoff(initial=0.001, maximum=0.001))
    assert await retrier.call(attempt) == "b"
    assert await retrier.call(attempt) == "b"
    assert tried == ["a", "b", "b"]


async def test_retrier_gives_up_at_its_deadline() -> None:
    async def attempt(endpoint: str) -> str:
        raise ConnectionError(endpoint)

    retrier = Retrier(["a"], timeout=0.05, backoff=Backoff(initial=0.01, maximum=0.01))
    with pytest.raises(TimeoutError):
        await retrier.call(attempt)


# --- ratios and the table -------------------------------------------------------------------------

RESULTS: dict[str, object] = {
    "raftsched": {"writes": {"1": {"tput": 500.0, "p50_ms": 2.0, "p99_ms": 4.0},
                             "128": {"tput": 8000.0, "p50_ms": 15.0, "p99_ms": 40.0}},
                  "failover": {"median_s": 1.2, "min_s": 1.0, "max_s": 1.5},
                  "submit_batch": {"batch": 100, "jobs_per_s": 40000.0}},
    "etcd": {"writes": {"1": {"tput": 1000.0, "p50_ms": 1.0, "p99_ms": 3.0},
                        "128": {"tput": 4000.0, "p50_ms": 30.0, "p99_ms": 60.0}},
             "failover": {"median_s": 2.4, "min_s": 2.0, "max_s": 3.0}},
    "pysyncobj": {"writes": {"128": {"tput": 1000.0, "p50_ms": 100.0, "p99_ms": 120.0},
                             "1024": {"tput": 2000.0, "p50_ms": 500.0, "p99_ms": 600.0}},
                  "failover": {"median_s": float("nan")}},
}


def test_ratios_are_raftsched_over_the_anchor() -> None:
    ratios = report.ratios(RESULTS, (1, 128))
    assert ratios["submit_128_tput_vs_etcd"] == 2.0
    assert ratios["submit_1_p50_vs_etcd"] == 2.0
    assert ratios["failover_median_vs_etcd"] == 0.5
    assert ratios["submit_128_tput_vs_pysyncobj"] == 8.0
    assert ratios["submit_peak_tput_vs_pysyncobj"] == 4.0
    assert ratios["batch_jobs_vs_etcd_128_tput"] == 10.0
    assert ratios["submit_1_tput_vs_pysyncobj"] is None  # not measured there
    assert ratios["failover_median_vs_pysyncobj"] is None  # nan: no trial finished


def test_table_is_one_markdown_table_with_every_figure() -> None:
    results = {**RESULTS, "ratios": report.ratios(RESULTS, (1, 128))}
    lines = report.table(results, (1, 128)).splitlines()
    assert lines[0] == ("| figure | raftsched | etcd | PySyncObj | gRPC floor | replication floor | vs etcd "
                        "| vs PySyncObj |")
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines)
    assert len({line.count("|") for line in lines}) == 1
    row = next(line for line in lines if line.startswith("| writes/s acknowledged, 128 in flight"))
    assert row == "| writes/s acknowledged, 128 in flight | 8,000 | 4,000 | 1,000 | n/a | n/a | 2.00x | 8.00x |"
    failover = next(line for line in lines if line.startswith("| failover"))
    assert "1.20 (1.00-1.50)" in failover and "n/a" in failover


def test_the_floor_column_sets_raftsched_against_a_server_that_does_nothing() -> None:
    floor = {"writes": {"1": {"tput": 2500.0, "p50_ms": 0.4, "p99_ms": 0.6},
                        "128": {"tput": 8000.0, "p50_ms": 15.0, "p99_ms": 20.0, "server_cpu_us_per_op": 120.0}}}
    results = {**RESULTS, "grpc_floor": floor}
    results["ratios"] = report.ratios(results, (1, 128))
    assert results["ratios"]["floor_128_tput_vs_etcd"] == 2.0
    assert results["ratios"]["submit_128_tput_vs_floor"] == 1.0
    assert results["ratios"]["submit_1_p50_vs_floor"] == 5.0
    lines = report.table(results, (1, 128)).splitlines()
    assert len({line.count("|") for line in lines}) == 1
    row = next(line for line in lines if line.startswith("| p50 latency ms, 1 in flight"))
    assert row == "| p50 latency ms, 1 in flight | 2.00 | 1.00 | n/a | 0.4 | n/a | 2.00x | n/a |"


def test_the_replication_floor_column_sets_raftsched_against_a_bare_replicated_write() -> None:
    floor = {"writes": {"128": {"tput": 8000.0, "p50_ms": 15.0, "p99_ms": 20.0}}}
    replicated = {"writes": {"128": {"tput": 4000.0, "p50_ms": 30.0, "p99_ms": 45.0, "server_cpu_us_per_op": 400.0}}}
    results = {**RESULTS, "grpc_floor": floor, "replication_floor": replicated}
    results["ratios"] = report.ratios(results, (1, 128))
    assert results["ratios"]["replication_floor_128_tput_vs_floor"] == 0.5
    assert results["ratios"]["submit_128_tput_vs_replication_floor"] == 2.0
    assert results["ratios"]["submit_1_tput_vs_replication_floor"] is None  # not measured there
    lines = report.table(results, (1, 128)).splitlines()
    assert len({line.count("|") for line in lines}) == 1
    row = next(line for line in lines if line.startswith("| server CPU µs per write, 128 in flight"))
    assert row.split(" | ")[5] == "400", row
    row = next(line for line in lines if line.startswith("| replication floor's writes/s"))
    assert row.endswith("| 4,000 |  |  |  |  | floor 0.50x |  |"), row


@pytest.mark.parametrize(("value", "text"), [(None, "n/a"), (12345.6, "12,346"), (12.34, "12.3"),
                                              (1.234, "1.23"), (0.01234, "0.0123")])
def test_fmt(value: float | None, text: str) -> None:
    assert report.fmt(value) == text


# --- optional: a real etcd ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (Debian etcd-server)")
async def test_hand_encoded_put_is_accepted_by_a_real_etcd(tmp_path: Path) -> None:
    from benchlib.etcd import EtcdCluster
    from benchlib.procs import ProcessSet

    procs = ProcessSet()
    cluster = EtcdCluster(shutil.which("etcd") or "etcd", tmp_path, procs)
    try:
        await cluster.start()
        op = await cluster.write_op()
        response = await op(0)
        assert isinstance(response, bytes) and response  # PutResponse{header}
        leader = await cluster.leader()
        status = await cluster.status(leader)
        assert status["raft_applied_index"] >= 1
    finally:
        await cluster.close()
        procs.stop_all()

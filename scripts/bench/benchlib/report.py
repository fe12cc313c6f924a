"""Ratios (raftsched's figure over an anchor's) and the one markdown table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Results = dict[str, Any]
ANCHORS = ("etcd", "pysyncobj")
NA = "n/a"


def _get(results: Results, *path: str | int) -> float | None:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or str(key) not in node:
            return None
        node = node[str(key)]
    if isinstance(node, bool) or not isinstance(node, int | float) or math.isnan(node):
        return None
    return float(node)


def peak_tput(system: Results) -> float | None:
    """The best acknowledged writes/s over every in-flight level measured."""
    writes = system.get("writes", {})
    found = [_get(writes, level, "tput") for level in writes] if isinstance(writes, dict) else []
    values = [v for v in found if v is not None]
    return max(values) if values else None


def ratio(mine: float | None, anchor: float | None) -> float | None:
    if mine is None or anchor is None or anchor == 0:
        return None
    return round(mine / anchor, 3)


# (ratio suffix, path under each system): the figures both raftsched and an anchor have.
def _shared_figures(levels: Sequence[int]) -> list[tuple[str, tuple[str | int, ...]]]:
    figures: list[tuple[str, tuple[str | int, ...]]] = []
    for c in levels:
        figures += [(f"submit_{c}_tput", ("writes", c, "tput")), (f"submit_{c}_p50", ("writes", c, "p50_ms")),
                    (f"submit_{c}_p99", ("writes", c, "p99_ms"))]
    figures.append(("failover_median", ("failover", "median_s")))
    return figures


def ratios(results: Results, levels: Sequence[int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    mine = results.get("raftsched", {})
    for anchor in ANCHORS:
        theirs = results.get(anchor, {})
        for name, path in _shared_figures(levels):
            out[f"{name}_vs_{anchor}"] = ratio(_get(mine, *path), _get(theirs, *path))
        out[f"submit_peak_tput_vs_{anchor}"] = ratio(peak_tput(mine), peak_tput(theirs))
        top = max(levels)
        out[f"batch_jobs_vs_{anchor}_{top}_tput"] = ratio(_get(mine, "submit_batch", "jobs_per_s"),
                                                          _get(theirs, "writes", top, "tput"))
    floor = results.get("grpc_floor", {})
    replicated = results.get("replication_floor", {})
    for c in levels:
        out[f"floor_{c}_tput_vs_etcd"] = ratio(_get(floor, "writes", c, "tput"),
                                               _get(results.get("etcd", {}), "writes", c, "tput"))
        out[f"submit_{c}_tput_vs_floor"] = ratio(_get(mine, "writes", c, "tput"), _get(floor, "writes", c, "tput"))
        out[f"replication_floor_{c}_tput_vs_floor"] = ratio(_get(replicated, "writes", c, "tput"),
                                                            _get(floor, "writes", c, "tput"))
        out[f"submit_{c}_tput_vs_replication_floor"] = ratio(_get(mine, "writes", c, "tput"),
                                                             _get(replicated, "writes", c, "tput"))
    etcd = results.get("etcd", {})
    top = max(levels)
    out["stream_128_tput_vs_etcd"] = ratio(_get(mine, "stream_writes", 128, "tput"), _get(etcd, "writes", 128, "tput"))
    out["submit_1_p50_busy_vs_idle"] = ratio(_get(mine, "lone_submits", "busy", "p50_ms"),
                                             _get(mine, "lone_submits", "idle", "p50_ms"))
    out["e2e_tput_vs_etcd128"] = ratio(_get(mine, "end_to_end", "jobs_per_s"), _get(etcd, "writes", top, "tput"))
    out["submitjobs_tput_vs_etcd128"] = out.get(f"batch_jobs_vs_etcd_{top}_tput")
    out["transfer_pause_ms"] = _get(mine, "transfer", "median_ms")
    low = min(levels)
    out[f"floor_{low}_p50_vs_etcd"] = ratio(_get(floor, "writes", low, "p50_ms"),
                                           _get(results.get("etcd", {}), "writes", low, "p50_ms"))
    out[f"submit_{low}_p50_vs_floor"] = ratio(_get(mine, "writes", low, "p50_ms"), _get(floor, "writes", low, "p50_ms"))
    return out


def fmt(value: float | None) -> str:
    if value is None:
        return NA
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return NA if value is None else f"{value:.2f}x"


def _failover_cell(system: Results) -> str:
    median = _get(system, "failover", "median_s")
    if median is None:
        return NA
    low, high = _get(system, "failover", "min_s"), _get(system, "failover", "max_s")
    return f"{fmt(median)} ({fmt(low)}-{fmt(high)})"


def table(results: Results, levels: Sequence[int]) -> str:
    """One table. The "gRPC floor" column is a Python gRPC server whose SubmitJob does nothing: the
    most any Python gRPC server gets here from this load generator (writes only). The "replication
    floor" column is three processes doing only a replicated, durable write (writes only)."""
    r = results.get("raftsched", {})
    e = results.get("etcd", {})
    p = results.get("pysyncobj", {})
    f = results.get("grpc_floor", {})
    rf = results.get("replication_floor", {})
    rs = results.get("ratios", {})
    rows = [["figure", "raftsched", "etcd", "PySyncObj", "gRPC floor", "replication floor", "vs etcd", "vs PySyncObj"],
            ["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]]

    def shared(label: str, name: str, path: tuple[str | int, ...]) -> None:
        rows.append([label, *(fmt(_get(s, *path)) for s in (r, e, p, f, rf)),
                     fmt_ratio(rs.get(f"{name}_vs_etcd")), fmt_ratio(rs.get(f"{name}_vs_pysyncobj"))])

    def alone(label: str, value: str, vs_etcd: str = "", vs_pysyncobj: str = "") -> None:
        rows.append([label, value, "", "", "", "", vs_etcd, vs_pysyncobj])

    for c in levels:
        shared(f"writes/s acknowledged, {c} in flight", f"submit_{c}_tput", ("writes", c, "tput"))
        shared(f"p50 latency ms, {c} in flight", f"submit_{c}_p50", ("writes", c, "p50_ms"))
        shared(f"p99 latency ms, {c} in flight", f"submit_{c}_p99", ("writes", c, "p99_ms"))
    rows.append(["peak writes/s, any in-flight level", *(fmt(peak_tput(s)) for s in (r, e, p, f, rf)),
                 fmt_ratio(rs.get("submit_peak_tput_vs_etcd")), fmt_ratio(rs.get("submit_peak_tput_vs_pysyncobj"))])
    top = max(levels)
    for label, key in ((f"client CPU µs per write, {top} in flight", "client_cpu_us_per_op"),
                       (f"server CPU µs per write, {top} in flight", "server_cpu_us_per_op")):
        rows.append([label, *(fmt(_get(s, "writes", top, key)) for s in (r, e, p, f, rf)), "", ""])
    rows.append(["failover window s, median (min-max)", _failover_cell(r), _failover_cell(e), _failover_cell(p), "", "",
                 fmt_ratio(rs.get("failover_median_vs_etcd")), fmt_ratio(rs.get("failover_median_vs_pysyncobj"))])
    batch = _get(r, "submit_batch", "batch")
    alone(f"SubmitJobs batches of {fmt(batch)}: jobs/s acknowledged", fmt(_get(r, "submit_batch", "jobs_per_s")),
          fmt_ratio(rs.get(f"batch_jobs_vs_etcd_{top}_tput")), fmt_ratio(rs.get(f"batch_jobs_vs_pysyncobj_{top}_tput")))
    alone("SubmitJobStream writes/s acknowledged, 128 in flight", fmt(_get(r, "stream_writes", 128, "tput")),
          fmt_ratio(rs.get("stream_128_tput_vs_etcd")))
    alone("end-to-end noop jobs/s (4 executors), vs etcd's writes/s at 128", fmt(_get(r, "end_to_end", "jobs_per_s")),
          fmt_ratio(rs.get("e2e_tput_vs_etcd128")))
    alone("SubmitJob p50 ms, 1 in flight, executors running them / none",
          f"{fmt(_get(r, 'lone_submits', 'busy', 'p50_ms'))} / {fmt(_get(r, 'lone_submits', 'idle', 'p50_ms'))}"
          f" ({fmt_ratio(rs.get('submit_1_p50_busy_vs_idle'))})")
    alone("leader transfer: longest write gap ms, median", fmt(_get(r, "transfer", "median_ms")))
    alone("writes/s acknowledged, 128 in flight, vs the gRPC floor", fmt(_get(r, "writes", top, "tput")),
          f"floor {fmt_ratio(rs.get(f'submit_{top}_tput_vs_floor'))}")
    alone("replication floor's writes/s, 128 in flight, vs the gRPC floor", fmt(_get(rf, "writes", top, "tput")),
          f"floor {fmt_ratio(rs.get(f'replication_floor_{top}_tput_vs_floor'))}")
    alone("executor loss: kill → attempt ended, s", fmt(_get(r, "executor_loss", "detect_median_s")))
    alone("executor loss: kill → next attempt assigned, s", fmt(_get(r, "executor_loss", "requeue_median_s")))
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)

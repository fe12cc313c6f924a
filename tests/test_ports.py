"""Ports for real processes (raftsched.testing.procs): ranges handed out in one process never
overlap, even before anything binds them (a cluster's ports and then its metrics ports)."""

from __future__ import annotations

from raftsched.testing.procs import free_port_range


def test_ranges_handed_out_in_one_process_never_overlap() -> None:
    # A narrow span makes overlaps likely: 25 ranges of 3 in 150 ports.
    ranges = [free_port_range(3, 28000, 28150) for _ in range(25)]
    ports = [p for r in ranges for p in r]
    assert len(set(ports)) == len(ports), sorted(ports)
    assert all(r == list(range(r[0], r[0] + 3)) and 28000 <= r[0] < 28147 for r in ranges)

"""Measure how long a node N entries behind takes to catch up, and the size of the snapshot it
receives (issue 5's "Done when"). Not part of `make test`:

    .venv/bin/python scripts/dr_catchup.py --entries 100000

Starts 3 real nodes (tests/integration/cluster.py), kills one follower, commits N entries (one
keyed noop SubmitJob each) through the other two, waits for the leader to compact past the
follower, restarts it, and times until its applied index reaches the leader's commit index.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from dr.dr import load  # noqa: E402
from integration.cluster import Cluster, wait_for  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=48)
    parser.add_argument("--snapshot-entries", type=int, default=10_000)
    parser.add_argument("--snapshot-keep-tail", type=int, default=1_000)
    args = parser.parse_args(argv)
    flags = ("--snapshot-entries", str(args.snapshot_entries), "--snapshot-keep-tail", str(args.snapshot_keep_tail))
    with tempfile.TemporaryDirectory(prefix="dr-catchup-") as tmp, Cluster(Path(tmp), node_flags=flags) as c:
        c.start_all()
        leader = c.wait_leader(30)
        lagging = next(n for n in c.ids if n != leader)
        c.kill(lagging)
        live = tuple(n for n in c.ids if n != lagging)
        started = time.monotonic()
        load(c, args.entries, "catchup", threads=args.threads, among=live)
        loaded = time.monotonic() - started
        leader = c.wait_leader(30, among=live)
        commit = c.local_status(leader).commit_index
        behind = commit - args.snapshot_keep_tail - args.snapshot_entries
        wait_for(lambda: c.local_status(leader).snapshot_index > behind, 60, "the leader compacts")
        started = time.monotonic()
        c.start(lagging)
        c.wait_caught_up(lagging, 600)
        took = time.monotonic() - started
        status = c.local_status(lagging)
        text = c.nodes[lagging].log.read_text(errors="replace")
        sizes = [int(b) for b in re.findall(r"installed snapshot at index \d+ \((\d+) bytes\)", text)]
        print(
            f"entries committed while {lagging} was down: {args.entries} (loaded in {loaded:.1f}s, "
            f"{args.entries / loaded:.0f}/s); leader commit {commit}"
        )
        print(
            f"{lagging} caught up in {took:.2f}s (process start to applied >= leader commit); "
            f"first index now {status.snapshot_index + 1}, applied {status.applied_index}"
        )
        print(f"snapshots installed: {len(sizes)}, sizes in bytes: {sizes}")
        data_dirs = {n: sum(f.stat().st_size for f in c.data_dir(n).rglob("*") if f.is_file()) for n in c.ids}
        print(f"data directory sizes: {data_dirs}")
        return 0 if sizes else 1


if __name__ == "__main__":
    sys.exit(main())

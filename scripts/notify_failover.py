"""Measure promise 13 across leader kills: webhooks from a 3-node cluster to a receiver on
127.0.0.1 while failing jobs keep coming and the leader is killed (-9) N times. Not part of
`make test`:

    .venv/bin/python scripts/notify_failover.py --kills 3

Default Raft timings (heartbeat 100 ms, election 1-2 s; --fast for 50/500 ms), retries after
200 ms doubling up to 2 s. One failing job (handler `fail`, 1 attempt) is submitted every
--interval; every --every seconds
the leader is killed, a new leader awaited, and the dead node restarted. After the last kill the
load stops and the run waits until the sink's outbox is empty. It prints:

  emitted     events the cluster made for the sink (its `queued` counter, replicated)
  delivered   distinct event ids the receiver got (and the sink's `delivered` counter)
  lost        emitted but never received (ids of failed jobs without their job.failed, and
              emitted - distinct received)
  duplicates  deliveries beyond the first of an id, whether every repeat had the same body, and
              the longest time between the first and the last delivery of one id
  delay       arrival - the event's time_ms (the leader's stamp when it was made): p50, p99, max,
              and the largest one's event type
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from integration.cluster import DEFAULT, FAST, Cluster, run_cli, wait_for  # noqa: E402
from integration.hooks import Receiver  # noqa: E402

from raftsched.client import ClientError  # noqa: E402
from raftsched.testing.procs import free_port_range  # noqa: E402
from raftsched.v1 import jobs_pb2  # noqa: E402

SECRET = b"measure-secret"
FLAGS = ("--notify-retry-initial", "200ms", "--notify-retry-max", "2s", "--cluster-name", "measure")


class Load:
    """Submits a failing job every `interval` seconds until stopped; remembers the ids."""

    def __init__(self, c: Cluster, interval: float) -> None:
        self.c, self.interval = c, interval
        self.ids: list[str] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = self.c.client(timeout=5.0)
        while not self._stop.wait(self.interval):
            try:
                job = client.submit_job(jobs_pb2.JobSpec(handler="fail", max_attempts=1)).job
                self.ids.append(job.id)
            except ClientError:
                self.errors += 1  # unavailable during an election: the client gave up this one

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def sink(c: Cluster) -> dict[str, object]:
    r = run_cli("notify", "list", "--json", cluster=c.cluster)
    if r.returncode != 0:
        return {}
    return json.loads(r.stdout.splitlines()[0])


def run(work: Path, kills: int, every: float, interval: float, fast: bool) -> dict[str, object]:
    receiver = Receiver(free_port_range(1)[0], SECRET)
    receiver.up()
    (work / "secret").write_bytes(SECRET)
    c = Cluster(work / "cluster", node_flags=FLAGS, timing=FAST if fast else DEFAULT)
    try:
        c.start_all()
        c.wait_leader(30)
        c.start_executor("e1", 8)
        c.wait_executors("e1")
        r = run_cli("notify", "add", "m", "--url", receiver.url, "--secret-file", str(work / "secret"),
                    cluster=c.cluster)
        assert r.returncode == 0, r.stderr
        load = Load(c, interval)
        load.start()
        for n in range(kills):
            time.sleep(every)
            old = c.leader()
            assert old is not None
            c.kill(old)
            new = c.wait_leader(30, among=[x for x in c.ids if x != old])
            print(f"kill {n + 1}: {old} killed, {new} leads; {len(receiver.deliveries)} deliveries so far",
                  flush=True)
            c.start(old)
        time.sleep(every)
        load.stop()
        for job_id in load.ids:
            c.wait_state(job_id, jobs_pb2.JOB_STATE_FAILED, timeout=60)
        final = wait_for(lambda: (s := sink(c)) and int(str(s.get("pending", 1))) == 0 and s, 120,
                         "an empty outbox", 0.5)
        return figures(receiver, load, final)
    except BaseException:
        print(c.logs(), file=sys.stderr)
        raise
    finally:
        receiver.down()
        c.close()


def figures(receiver: Receiver, load: Load, final: dict[str, object]) -> dict[str, object]:
    with receiver.lock:
        rows = list(zip(receiver.deliveries, receiver.arrived_ms, strict=True))
    per_id = Counter(event_id for (event_id, _, _), _ in rows)
    bodies: dict[str, set[bytes]] = {}
    first_arrival: dict[str, tuple[int, dict[str, object]]] = {}
    for (event_id, raw, _), arrived in rows:
        bodies.setdefault(event_id, set()).add(raw)
        if event_id not in first_arrival:
            first_arrival[event_id] = (arrived, json.loads(raw))
    failed_jobs = {body["data"]["job_id"] for _, body in first_arrival.values()  # type: ignore[index]
                   if body["type"] == "job.failed"}
    arrivals: dict[str, list[int]] = {}
    for (event_id, _, _), arrived in rows:
        arrivals.setdefault(event_id, []).append(arrived)
    gaps = [max(a) - min(a) for a in arrivals.values() if len(a) > 1]
    delays = sorted((arrived - int(body["time_ms"]), str(body["type"]))  # type: ignore[call-overload]
                    for arrived, body in first_arrival.values())
    emitted = int(str(final["queued"]))
    return {
        "jobs_failed": len(load.ids),
        "submits_refused_during_elections": load.errors,
        "emitted": emitted,
        "delivered_distinct": len(per_id),
        "sink_delivered_counter": int(str(final["delivered"])),
        "deliveries_total": len(rows),
        "duplicates": sum(n - 1 for n in per_id.values()),
        "duplicate_ids": sum(1 for n in per_id.values() if n > 1),
        "repeat_gap_ms_max": max(gaps) if gaps else None,
        "repeats_with_another_body": sum(1 for b in bodies.values() if len(b) > 1),
        "bad_signatures": sum(1 for (_, _, good), _ in rows if not good),
        "lost": emitted - len(per_id),
        "failed_jobs_without_event": len(set(load.ids) - failed_jobs),
        "by_type": dict(Counter(str(body["type"]) for _, body in first_arrival.values())),
        "delay_ms_p50": statistics.median(d for d, _ in delays) if delays else None,
        "delay_ms_p99": delays[int(0.99 * (len(delays) - 1))][0] if delays else None,
        "delay_ms_max": delays[-1][0] if delays else None,
        "delay_max_type": delays[-1][1] if delays else None,
        "sink_failed_attempts": int(str(final["failedAttempts"])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--every", type=float, default=8.0, help="seconds between leader kills")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between failing jobs")
    parser.add_argument("--fast", action="store_true", help="short Raft timers (election 500 ms) instead of "
                        "the defaults (heartbeat 100 ms, election 1000-2000 ms)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="notify-failover-"))
    try:
        result = run(work, args.kills, args.every, args.interval, args.fast)
    finally:
        if args.keep:
            print(f"run directory: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for key, value in result.items():
        print(f"{key:36s} {value}")
    print(json.dumps(result))
    ok = result["lost"] == 0 and result["failed_jobs_without_event"] == 0 and not result["bad_signatures"]
    return 0 if ok and not result["repeats_with_another_body"] else 1


if __name__ == "__main__":
    sys.exit(main())

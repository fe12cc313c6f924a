"""Disaster recovery with real processes (issue 5, "Tests that must exist"): catch-up through
InstallSnapshot, SIGKILL in the middle of one, membership changes and leadership transfer under a
writing client, backup and restore into a new cluster, and force-new-cluster after losing a quorum.

Every cluster is `tests/integration/cluster.py`'s: processes in their own sessions on free
127.0.0.1 ports, SIGKILLed at teardown; every wait has a deadline. The 100,000-entry catch-up
measurement is `scripts/dr_catchup.py` (not part of `make test`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.cluster import Cluster, run_cli, wait_for

from .dr import (
    SNAPSHOT_FLAGS,
    Writer,
    add_node_id,
    applied,
    assert_acked_present,
    comparable,
    jobs_on,
    load,
    log_text,
    start_joining,
)

pytestmark = pytest.mark.integration

CATCHUP_ENTRIES = 2000  # scripts/dr_catchup.py measures 100,000


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "c", node_flags=SNAPSHOT_FLAGS)
    try:
        c.start_all()
        c.wait_leader(30)
        yield c
    finally:
        if any(
            getattr(request.node, f"rep_{w}", None) and getattr(request.node, f"rep_{w}").failed
            for w in ("setup", "call")
        ):
            print(c.logs(60))
        c.close()


def follower_of(c: Cluster, leader: str) -> str:
    return next(n for n in c.ids if n != leader and n in c.live())


def others(c: Cluster, *excluded: str) -> tuple[str, ...]:
    return tuple(n for n in c.ids if n not in excluded)


def wait_compacted(c: Cluster, nid: str, beyond: int, timeout: float = 30.0) -> int:
    """Wait until `nid` compacted its log beyond index `beyond`; returns its snapshot index."""
    return wait_for(
        lambda: (s := c.local_status(nid).snapshot_index) > beyond and s, timeout, f"{nid} compacts beyond {beyond}"
    )


def test_node_down_for_thousands_of_entries_catches_up_by_snapshot(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    lagging = follower_of(c, leader)
    last_before = c.local_status(lagging).last_log_index
    c.kill(lagging)
    acked = load(c, CATCHUP_ENTRIES, "catchup", among=others(c, lagging))
    leader = c.wait_leader(among=others(c, lagging))
    wait_compacted(c, leader, last_before + 100)
    started = time.monotonic()
    c.start(lagging)
    c.wait_caught_up(lagging, 60)
    took = time.monotonic() - started
    status = c.local_status(lagging)
    print(
        f"\n{lagging}: {CATCHUP_ENTRIES} entries behind, caught up in {took:.1f}s; first index "
        f"{status.snapshot_index + 1}, applied {status.applied_index}"
    )
    assert status.snapshot_index + 1 > 1, "the log starts at 1: it did not catch up through a snapshot"
    assert "installed snapshot at index" in log_text(c, lagging)
    assert status.applied_index >= c.local_status(leader).commit_index - 0  # caught up, checked again
    jobs = jobs_on(c, lagging)
    assert_acked_present(jobs, acked, lagging)
    assert comparable(jobs) == comparable(jobs_on(c, leader))


def test_sigkill_during_install_snapshot_then_restart_converges(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    victim = follower_of(c, leader)
    c.kill(victim)
    live = others(c, victim)
    big = load(c, 40, "big", payload=bytes(range(256)) * 2048, threads=4, among=live)  # 40 x 512 KiB
    small = load(c, 400, "small", among=live)
    leader = c.wait_leader(among=live)
    wait_compacted(c, leader, 200)
    sends_before = log_text(c, leader).count(f"to {victim}")
    c.start(victim)
    wait_for(lambda: log_text(c, leader).count(f"to {victim}") > sends_before
             and "sending snapshot" in log_text(c, leader), 60, f"{leader} starts streaming a snapshot to {victim}",
             interval=0.005)  # fmt: skip
    c.kill(victim)  # SIGKILL while the snapshot streams (or, at worst, while it installs)
    installed_before_kill = "installed snapshot at index" in log_text(c, victim)
    print(
        f"\nkilled {victim} during the snapshot stream; it had {'' if installed_before_kill else 'not '}"
        "installed it yet"
    )
    c.start(victim)
    c.wait_caught_up(victim, 90)
    jobs = jobs_on(c, victim, page_size=16)  # 16 x 512 KiB per page: under the 16 MiB message limit
    assert_acked_present(jobs, {**big, **small}, victim)
    assert comparable(jobs) == comparable(jobs_on(c, leader, page_size=16))


def test_add_learner_promote_and_remove_with_a_client_writing(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    admin = c.client(timeout=60)
    writer = Writer(c, "member", limit=4000).start()
    try:
        writer.wait_count(30)
        address = add_node_id(c, "n4")
        admin.add_member("n4", address, learner=True)
        start_joining(c, "n4", c.addr[leader])
        wait_for(lambda: applied(c, "n4") > 0, 60, "n4 applies entries as a learner")
        members = admin.promote_member("n4", timeout=60)
        assert "n4" in {m.id for m in members.voters}
        writer.wait_count(len(writer.acked) + 30)
        removed = next(n for n in ("n1", "n2", "n3") if n != c.wait_leader(among=["n1", "n2", "n3", "n4"]))
        members = admin.remove_member(removed, timeout=60)
        assert removed not in {m.id for m in [*members.voters, *members.learners]}
        c.kill(removed)  # the operator stops the removed node
        remaining = [n for n in c.ids if n != removed]
        writer.wait_count(len(writer.acked) + 30, timeout=60)
    finally:
        acked = writer.stop()
    c.ids.remove(removed)
    c._per_node = {}
    for nid in remaining:
        c.wait_caught_up(nid, 60, among=remaining)
    reference = comparable(jobs_on(c, remaining[0]))
    for nid in remaining:
        jobs = jobs_on(c, nid)
        assert_acked_present(jobs, acked, nid)
        assert comparable(jobs) == reference, f"{nid} holds other job data than {remaining[0]}"
    voters = {m.id for m in c.client(*remaining).list_members().voters}
    assert voters == set(remaining)
    print(f"\n{len(acked)} writes acknowledged across add learner, promote, remove {removed}")


def test_leadership_transfer_under_load(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    target = follower_of(c, leader)
    writer = Writer(c, "transfer", limit=4000).start()
    try:
        writer.wait_count(50)
        response = c.client(timeout=30).transfer_leader(target, timeout=30)
        assert response.leader == target
        assert c.wait_leader(10) == target
        writer.wait_count(len(writer.acked) + 50)
    finally:
        acked = writer.stop()
    for nid in c.ids:
        c.wait_caught_up(nid, 30)
        assert_acked_present(jobs_on(c, nid), acked, nid)
    print(f"\n{len(acked)} writes acknowledged across a transfer {leader} -> {target}")


def test_backup_then_restore_into_a_fresh_cluster_gives_the_same_jobs(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    acked = load(c, 300, "backup")
    backup = tmp_path / "backup.rsch"
    size = c.client(timeout=60).save_snapshot(str(backup), timeout=60)
    assert size == backup.stat().st_size > 0
    expected = comparable(jobs_on(c, c.wait_leader()))
    assert_acked_present(jobs_on(c, c.wait_leader()), acked, "the source cluster")
    c.close()  # the old cluster is gone; only the file remains
    fresh = Cluster(tmp_path / "restored", node_flags=SNAPSHOT_FLAGS)
    try:
        for nid in fresh.ids:
            out = run_cli(
                "snapshot",
                "restore",
                str(backup),
                "--data-dir",
                str(fresh.data_dir(nid)),
                "--id",
                nid,
                "--peers",
                fresh.peers,
                cluster=fresh.cluster,
            )
            assert out.returncode == 0, out.stderr
        fresh.start_all()
        fresh.wait_leader(30)
        for nid in fresh.ids:
            fresh.wait_caught_up(nid, 30)
            assert comparable(jobs_on(fresh, nid)) == expected, f"restored {nid} differs from the backup's source"
        fresh.submit(handler="noop")  # and the restored cluster takes new writes
    finally:
        fresh.close()


def test_force_new_cluster_from_one_survivor_keeps_committed_jobs(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    acked = load(c, 300, "before-loss")
    leader = c.wait_leader()
    for nid in c.ids:
        c.wait_caught_up(nid, 30)
    survivor = follower_of(c, leader)
    lost = [n for n in c.ids if n != survivor]
    for nid in lost:
        c.kill(nid)
    c.kill(survivor)
    flags = c.node_flags
    c.node_flags = (*flags, "--force-new-cluster")
    c.start(survivor)
    c.node_flags = flags
    assert c.wait_leader(30, among=[survivor]) == survivor
    assert_acked_present(jobs_on(c, survivor), acked, f"{survivor} after --force-new-cluster")
    after = load(c, 50, "after-loss", among=(survivor,))
    rejoin = lost[0]
    c.client(survivor, timeout=60).add_member(rejoin, c.addr[rejoin], learner=True)
    start_joining(c, rejoin, c.addr[survivor], data_dir=tmp_path / f"fresh-{rejoin}")
    c.wait_caught_up(rejoin, 60, among=[survivor, rejoin])
    jobs = jobs_on(c, rejoin)
    assert_acked_present(jobs, {**acked, **after}, f"{rejoin} re-added as a learner")
    assert comparable(jobs) == comparable(jobs_on(c, survivor))
    members = c.client(survivor).list_members()
    assert [m.id for m in members.voters] == [survivor] and [m.id for m in members.learners] == [rejoin]

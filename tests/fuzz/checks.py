"""What must hold after every batch of fuzzed requests: every node alive, one leader, every replica
applying everything committed, every replica's committed log the same entry for entry, no CORRUPT
alarm, and no traceback in any node's log."""

from __future__ import annotations

import hashlib

from integration.cluster import Cluster, wait_for

PAGE = 1000
MAX_TERM_SEEN = 1 << 24  # raftsched.raft.validate.MAX_TERM_JUMP is 2**20 per message
TRACEBACK = "Traceback (most recent call last)"


def check_cluster(c: Cluster, what: str) -> None:
    dead = [nid for nid in c.ids if not c.nodes[nid].alive()]
    assert not dead, f"{what}: node(s) {dead} died"
    c.wait_leader(30)
    for nid in c.ids:
        c.wait_caught_up(nid, timeout=30)
    for nid, st in c.statuses(c.ids).items():
        assert st.healthy, f"{what}: {nid} unhealthy: {st}"
        assert st.commit_index <= st.last_log_index, f"{what}: {nid} committed past its log: {st}"
        # Fuzzed votes in a member's name may move terms on by small steps; never by a huge jump.
        assert 0 < st.term < MAX_TERM_SEEN, f"{what}: {nid} in term {st.term}"
    assert_logs_identical(c, what)
    alarms = c.client().list_alarms().alarms
    assert not alarms, f"{what}: alarms raised: {alarms}"
    assert_no_traceback(c, what)


def log_digests(c: Cluster, nid: str, start: int, end: int) -> dict[int, str]:
    """sha256 of every entry of `nid`'s log in [start, end]."""
    client = c.client(nid)
    out: dict[int, str] = {}
    index = start
    while index <= end:
        page = client.read_log(index, PAGE, timeout=10).entries
        if not page:
            break
        for entry in page:
            if entry.index <= end:
                out[entry.index] = hashlib.sha256(entry.SerializeToString(deterministic=True)).hexdigest()
        index = page[-1].index + 1
    return out


def assert_logs_identical(c: Cluster, what: str) -> None:
    """The committed entries every replica still holds are the same bytes on every replica."""
    heads = {nid: c.client(nid).read_log(0, 1, timeout=10) for nid in c.ids}
    start = max(h.first_index for h in heads.values())
    end = min(h.commit_index for h in heads.values())
    digests = {nid: log_digests(c, nid, start, end) for nid in c.ids}
    reference = digests[c.ids[0]]
    assert len(reference) == end - start + 1, f"{what}: {c.ids[0]} misses entries of [{start}, {end}]"
    for nid, got in digests.items():
        differ = sorted(i for i in reference if got.get(i) != reference[i])
        assert not differ, f"{what}: {nid}'s log differs from {c.ids[0]}'s at indexes {differ[:10]}"


def assert_no_traceback(c: Cluster, what: str) -> None:
    for nid in c.ids:
        text = (c.root / f"{nid}.log").read_text(errors="replace")
        at = text.find(TRACEBACK)
        assert at < 0, f"{what}: a traceback in {nid}'s log:\n{text[max(0, at - 300):at + 2500]}"


def wait_quiet(c: Cluster) -> None:
    """Let a leader settle after a batch (fuzzed votes may have started elections)."""
    wait_for(lambda: c.leader(), 30, "a leader after the batch")

"""`raftsched node --rebuild-from-peers`: throw this node's data away and rejoin from the cluster.

For a node whose stored state cannot be trusted: a CORRUPT alarm (its state differs from its
peers'), or a damaged data directory it refuses to start on. Wiping a voter's data in place would
be unsafe: it may have acknowledged entries that only it and a minority hold, and a voter that
forgot them could elect a leader without them. So it leaves and comes back as a new member, as
etcd's runbook does it (thesis §4.1, single-server changes):

1. remove this node from the membership (through any live member; the rest must keep a quorum);
2. delete the data directory;
3. add it back as a learner, and start it with --join: the leader sends it a snapshot;
4. once it has caught up, promote it to voter again (if it was one), from the node itself.

The cluster's next corruption check clears its CORRUPT alarm once its state agrees again.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

from raftsched.client import Client, ClientError
from raftsched.config import NodeConfig
from raftsched.storage.db import NodeDB
from raftsched.storage.errors import StoreError
from raftsched.storage.members import load_addresses

log = logging.getLogger("raftsched.rebuild")
TIMEOUT_S = 60.0
LISTED_WAIT_S = 30.0  # how long to wait for a peer that has applied our re-add
# In the new data directory while a voter's rebuild is not complete: a rebuild that stops after
# the re-add (and is run again) or a plain restart still asks to be a voter again.
PROMOTE_MARK = "REBUILT_VOTER"


class RebuildError(Exception):
    """The node could not leave and rejoin the cluster (the message says which step failed)."""


def rebuild_from_peers(config: NodeConfig) -> tuple[NodeConfig, bool]:
    """Leave, wipe, rejoin as a learner. Returns the config to start with (--join a peer) and
    whether this node was a voter (and so must be promoted once it has caught up)."""
    peers = _peer_addresses(config)
    if not peers:
        raise RebuildError("no other member is known: give --peers or --join (the data directory names none)")
    client = Client(peers, timeout=TIMEOUT_S)
    try:
        members = client.list_members()
        voters = {m.id for m in members.voters}
        was_voter = config.id in voters or promotion_pending(config.data_dir)
        if was_voter or config.id in {m.id for m in members.learners}:
            log.warning("rebuild: removing %s from the membership before wiping its data", config.id)
            client.remove_member(config.id)
        _wipe(Path(config.data_dir))
        if was_voter:
            (Path(config.data_dir) / PROMOTE_MARK).write_text("promote this node once it has caught up\n")
        address = config.advertise or config.listen
        log.warning("rebuild: wiped %s; adding %s back as a learner at %s", config.data_dir, config.id, address)
        client.add_member(config.id, address, learner=True)
    except ClientError as err:
        raise RebuildError(f"the cluster refused the rebuild ({err.code}: {err.message}); "
                           "see docs/operations.md, 'Rebuilding a node from its peers'") from None
    finally:
        client.close()
    # A peer that has applied the re-add: the first one asked may not have yet, and the start
    # would then fail ("does not list n4 as a member"), as seen in make chaos.
    rejoin = dataclasses.replace(config, peers={}, join=_listing_peer(config, peers), rebuild_from_peers=False)
    log.warning("rebuild: %s was a %s; %s", config.id, "voter" if was_voter else "learner",
                "it asks to be a voter again once it has caught up" if was_voter else "it stays a learner")
    return rejoin, was_voter


def promotion_pending(data_dir: str) -> bool:
    """Whether this node was a voter before a rebuild and has not been promoted since."""
    return (Path(data_dir) / PROMOTE_MARK).exists()


def promotion_done(data_dir: str) -> None:
    (Path(data_dir) / PROMOTE_MARK).unlink(missing_ok=True)


def _listing_peer(config: NodeConfig, peers: list[str]) -> str:
    """The first peer whose membership lists this node, waiting up to LISTED_WAIT_S."""
    deadline = time.monotonic() + LISTED_WAIT_S
    last = ""
    while True:
        for address in peers:
            with Client([address], timeout=2.0) as client:
                try:
                    members = client.list_members()
                except ClientError as err:
                    last = f"{address}: {err.code}"
                    continue
            if config.id in {m.id for m in [*members.voters, *members.learners]}:
                return address
            last = f"{address} does not list it yet"
        if time.monotonic() > deadline:
            raise RebuildError(f"no peer lists {config.id} as a member {LISTED_WAIT_S:.0f} s after it was "
                               f"added back ({last}); see docs/operations.md, 'Rebuilding a node from its peers'")
        time.sleep(0.5)


def _peer_addresses(config: NodeConfig) -> list[str]:
    """Where the rest of the cluster is: this node's stored address book, else --peers / --join."""
    found: dict[str, str] = {}
    try:
        with NodeDB(config.data_dir) as db:
            found = load_addresses(db) or {}
    except (StoreError, OSError) as err:
        log.warning("rebuild: cannot read the address book in %s (%s); using --peers/--join", config.data_dir, err)
    found.update(config.peers)
    addresses = [a for node, a in sorted(found.items()) if node != config.id]
    if config.join and config.join not in addresses:
        addresses.insert(0, config.join)
    return addresses


def _wipe(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)

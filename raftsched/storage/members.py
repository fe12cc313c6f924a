"""The address book: how to reach each member, kept beside the Raft state in `raft_meta`.

Membership itself (who votes) is Raft state, carried by CONFIG entries and snapshots; addresses
are what the transport needs to reach those ids, so they are saved whenever they change.
"""

from __future__ import annotations

from raftsched.storage import codec
from raftsched.storage.db import RAFT_META, NodeDB

ADDRESSES_KEY = b"addresses"


def load_addresses(db: NodeDB) -> dict[str, str] | None:
    raw = db.cf(RAFT_META).get(ADDRESSES_KEY)
    if raw is None:
        return None
    fields = codec.decode_record(RAFT_META, ADDRESSES_KEY, raw)
    return {str(k): str(v) for k, v in dict(fields.get("addresses", {})).items()}


def save_addresses(db: NodeDB, addresses: dict[str, str]) -> None:
    batch = db.batch()
    batch.put(ADDRESSES_KEY, codec.encode_record(ADDRESSES_KEY, {"addresses": addresses}), db.handle(RAFT_META))
    db.write(batch, sync=True)

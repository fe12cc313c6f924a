"""A downstream sink that refuses writes from a stale attempt, using raftsched's fencing token.

A task gets RAFTSCHED_FENCING_TOKEN="<job id>:<attempt>" in its environment. Before making an
effect visible, the sink asks the cluster (linearizably) whether that attempt is still current,
and records the token with the write so a later, stale writer can also be refused locally.

    python examples/fenced_sink.py --cluster 127.0.0.1:7001 --token "$RAFTSCHED_FENCING_TOKEN" --value 42

Exit status: 0 written, 1 refused as stale, 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from raftsched.client import Client


def current(client: Client, token: str) -> bool:
    job_id, _, attempt = token.rpartition(":")
    return client.check_fence(job_id, int(attempt)).current


@contextlib.contextmanager
def locked(store: Path) -> Iterator[None]:
    """Serialise writers: tasks of different jobs often finish together and share one store."""
    with open(store.with_name(store.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write(store: Path, token: str, value: str) -> None:
    """Record the value with its token; a higher attempt of the same job supersedes lower ones.
    Call under `locked(store)`. The store is replaced atomically, so a reader never sees half of it."""
    job_id, _, attempt = token.rpartition(":")
    records = json.loads(store.read_text()) if store.exists() else {}
    seen = records.get(job_id, {}).get("attempt", 0)
    if int(attempt) < seen:
        raise PermissionError(f"attempt {attempt} is older than {seen}, already written")
    records[job_id] = {"attempt": int(attempt), "value": value}
    partial = store.with_name(store.name + ".partial")
    partial.write_text(json.dumps(records))
    os.replace(partial, store)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    parser.add_argument("--token", required=True, help="RAFTSCHED_FENCING_TOKEN of the writing task")
    parser.add_argument("--value", required=True)
    parser.add_argument("--store", default="sink.json", type=Path)
    args = parser.parse_args()
    if ":" not in args.token:
        print("fenced_sink: --token must look like JOB:ATTEMPT", file=sys.stderr)
        return 2
    # The check and the write are one step under the lock: no other writer can slip between them.
    with locked(args.store), Client(args.cluster.split(",")) as client:
        if not current(client, args.token):
            print(f"fenced_sink: refused stale write from {args.token}", file=sys.stderr)
            return 1
        try:
            write(args.store, args.token, args.value)
        except PermissionError as err:
            print(f"fenced_sink: refused: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

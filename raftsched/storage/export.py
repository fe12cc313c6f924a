"""Write a state snapshot of a running node, from another process.

    python -m raftsched.storage.export --data-dir D --generation G --families a,b --out F --work W

It opens the node's RocksDB as a *secondary* instance (read-only, catching up with the primary's
WAL, which holds even the writes not yet synced), reads every state family at one point in time,
writes an SST file per family and bundles them (`raftsched.storage.bundle`). Why a process of its
own: rocksdict holds the GIL in every call, and iterating a million records in a thread of the
node would stall its Raft loop for seconds; a process of its own stalls nothing (SPEC §7: snapshots
are made off the event loop). The index comes from the state's own `applied_index` (written in the
same batch as the state it describes), so the snapshot is consistent whatever the node did meanwhile.

Prints one JSON line: {"index": I, "bytes": N, "seconds": S}. Exit 1 with a message on failure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from rocksdict import AccessType, Options, Rdict, SstFileWriter

from raftsched.storage.bundle import write_bundle
from raftsched.storage.db import family_name

META_FAMILY = "sm_meta"
APPLIED_KEY = b"applied_index"
FORMAT_KEY = b"format"


def export(data_dir: Path, generation: int, families: list[str], out: Path, work: Path) -> dict[str, object]:
    started = time.monotonic()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    options = Options(raw_mode=True)
    options.set_max_open_files(-1)  # a secondary instance must keep every file open
    physical = {name: family_name(name, generation) for name in families}
    db = Rdict(str(data_dir), options, column_families={p: Options(raw_mode=True) for p in physical.values()},
               access_type=AccessType.secondary(str(work / "secondary")))
    try:
        db.try_catch_up_with_primary()
        meta = db.get_column_family(physical[META_FAMILY])
        applied = meta.get(APPLIED_KEY)
        fmt = meta.get(FORMAT_KEY)
        index = int.from_bytes(applied, "big") if applied is not None else 0
        state_format = int.from_bytes(fmt, "big") if fmt is not None else 0
        ssts = [(name, _write_sst(db, physical[name], work / f"{name}.sst")) for name in families]
    finally:
        db.close()
    trailer = write_bundle(out, ssts, index=index, state_format=state_format)
    shutil.rmtree(work, ignore_errors=True)
    return {"index": trailer.index, "bytes": out.stat().st_size, "seconds": round(time.monotonic() - started, 3)}


def _write_sst(db: Rdict, family: str, path: Path) -> Path | None:
    """One family's records as an SST file, in key order (None when it is empty)."""
    view = db.get_column_family(family)
    writer = SstFileWriter(Options(raw_mode=True))
    writer.open(str(path))
    count = 0
    for key, value in view.items():
        writer[key] = value
        count += 1
    if not count:
        del view
        return None  # an empty SST file cannot be finished
    writer.finish()
    del view
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raftsched.storage.export")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--generation", required=True, type=int)
    parser.add_argument("--families", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        result = export(args.data_dir, args.generation, args.families.split(","), args.out, args.work)
    except Exception as err:  # reported to the node, which logs it and tries again later
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

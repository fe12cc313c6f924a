#!/usr/bin/env python3
"""Test the tester: run the chaos harness on a copy of the tree with a planted bug, and exit 0
only when the harness finds the run INVALID (SPEC §8).

    python jepsen-style/teeth.py --bug vote-not-persisted [--time 90]
    python jepsen-style/teeth.py --all [--time 90]          # every bug in jepsen-style/bugs/
    python jepsen-style/teeth.py --by-date                   # the bug of the day (CI), known misses left out
    python jepsen-style/teeth.py --list

A bug is `jepsen-style/bugs/NAME.patch`: free text, a `teeth-args:` line with the run.py options
that give the bug a chance to show (nemesis, cluster size, workload), then a git diff against the
tree. The copy holds `raftsched/` and `jepsen-style/` only; the harness runs from it
(PYTHONPATH=copy, so `import raftsched` and every node it starts load the patched package). A
line per bug: caught or MISSED, and the seconds from the run's start to its verdict. Exit codes:
0 every bug chosen was caught; 1 one was not; 2 bad arguments or a patch that does not apply.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUGS = HERE / "bugs"
COPIED = ("raftsched", "jepsen-style")
ARGS_PREFIX = "teeth-args:"
MISS_PREFIX = "teeth-known-miss:"  # the harness does not catch this bug yet (the line says why)
DEFAULT_TIME = 90.0
DEFAULT_SEED = 11


@dataclass(frozen=True)
class Bug:
    name: str
    path: Path
    run_args: list[str]
    known_miss: str = ""


class TeethError(Exception):
    """Bad arguments, or a patch that does not apply (the message says which)."""


def load_bugs(directory: Path = BUGS) -> list[Bug]:
    """Every bug in `directory`, sorted by name."""
    return [parse_bug(p) for p in sorted(directory.glob("*.patch"))]


def parse_bug(path: Path) -> Bug:
    run_args: list[str] = []
    miss = ""
    for line in path.read_text().splitlines():
        if line.startswith("diff --git"):
            break
        if line.startswith(ARGS_PREFIX):
            run_args = shlex.split(line[len(ARGS_PREFIX):])
        if line.startswith(MISS_PREFIX):
            miss = line[len(MISS_PREFIX):].strip()
    return Bug(path.stem, path, run_args, miss)


def select(bugs: list[Bug], name: str | None = None, every: bool = False,
           day: datetime.date | None = None) -> list[Bug]:
    """The bugs to run: one by name, all, or the day's (its ordinal modulo their number, as the
    acceptance check picks it)."""
    if not bugs:
        raise TeethError(f"no planted bugs in {BUGS}")
    if every:
        return bugs
    if name is not None:
        found = [b for b in bugs if b.name == name]
        if not found:
            raise TeethError(f"no bug named {name!r}; choose from {', '.join(b.name for b in bugs)}")
        return found
    if day is not None:  # CI: among the bugs the harness is known to catch
        caught = [b for b in bugs if not b.known_miss] or bugs
        return [caught[day.toordinal() % len(caught)]]
    raise TeethError("say which bug: --bug NAME, --all or --by-date")


def make_tree(bug: Bug, into: Path) -> Path:
    """A copy of raftsched/ and jepsen-style/ with the bug's patch applied; the copy's root."""
    tree = into / "tree"
    for part in COPIED:
        shutil.copytree(ROOT / part, tree / part,
                        ignore=shutil.ignore_patterns("__pycache__", "store", "*.pyc"))
    r = subprocess.run(["git", "apply", "--whitespace=nowarn", str(bug.path)], cwd=tree,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise TeethError(f"{bug.path.name} does not apply to this tree: {r.stderr.strip()[-300:]}")
    return tree


def run_one(bug: Bug, seconds: float, seed: int, keep: Path | None) -> tuple[bool, float, str]:
    """(caught, seconds from start to verdict, the run's verdict line)."""
    work = Path(tempfile.mkdtemp(prefix=f"teeth-{bug.name}-"))
    try:
        tree = make_tree(bug, work)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        store = Path(tempfile.mkdtemp(prefix=f"{bug.name}-", dir=keep)) if keep is not None else work / "store"
        cmd = [sys.executable, str(tree / "jepsen-style" / "run.py"), "--time", f"{seconds:g}", "--seed", str(seed),
               "--store", str(store), *bug.run_args]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        t0 = time.monotonic()
        r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=seconds + 600)
        took = time.monotonic() - t0
        verdict = next((ln for ln in r.stdout.splitlines() if "VALID" in ln), f"exit {r.returncode}")
        bad = _failing_checkers(store)
        if keep is not None:
            (keep / f"{bug.name}.out").write_text(r.stdout + r.stderr)
        # Too little load alone (checker `load`) is not a catch: the bug must break a promise.
        caught = r.returncode == 1 and any(name != "load" for name in bad)
        return caught, took, f"{verdict.strip()} {bad}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _failing_checkers(store: Path) -> list[str]:
    for results in sorted(store.glob("*/results.json"))[-1:]:  # the store is this run's alone
        data = json.loads(results.read_text())
        return sorted(k for k, v in data.get("checkers", {}).items() if not v.get("valid")) + (
            ["problems"] if data.get("problems") else [])
    return []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group()
    which.add_argument("--bug", help="the bug's name (jepsen-style/bugs/NAME.patch)")
    which.add_argument("--all", action="store_true", help="every bug, one after the other")
    which.add_argument("--by-date", action="store_true", help="the bug of the day (for CI)")
    which.add_argument("--list", action="store_true", help="list the bugs and their run options")
    p.add_argument("--time", type=float, default=DEFAULT_TIME, help="seconds of workload and faults per run")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--keep", type=Path, help="keep each run's store and output under this directory")
    args = p.parse_args(argv)
    if args.time <= 0:
        p.error("--time must be > 0")
    try:
        bugs = load_bugs()
        if args.list:
            for b in bugs:
                miss = f"  (known miss: {b.known_miss})" if b.known_miss else ""
                print(f"{b.name:40} {' '.join(b.run_args)}{miss}")
            return 0
        chosen = select(bugs, args.bug, args.all, datetime.date.today() if args.by_date else None)
        missed = 0
        for bug in chosen:
            caught, took, verdict = run_one(bug, args.time, args.seed, args.keep)
            missed += not caught
            print(f"teeth: {bug.name}: {'caught' if caught else 'MISSED'} in {took:.0f} s "
                  f"(--time {args.time:g}); {verdict}", flush=True)
    except TeethError as e:
        print(f"teeth.py: {e}", file=sys.stderr)
        return 2
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Importing raftsched changes nothing in the process, and a node, an executor or a client installs
only what it runs (issue 15 item 7)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("pytest", "pytest-asyncio", "hypothesis", "matplotlib", "grpcio-tools")


def test_importing_raftsched_leaves_the_environment_alone_and_the_entry_point_sets_grpc_fork_support_off() -> None:
    code = ("import json, os; before = dict(os.environ); "
            "import raftsched, raftsched.node, raftsched.client, raftsched.executor; "
            "changed = {k: v for k, v in os.environ.items() if before.get(k) != v}; "
            "import raftsched.cli.main; "
            "print(json.dumps([changed, os.environ.get('GRPC_ENABLE_FORK_SUPPORT')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                         timeout=60, check=True).stdout
    assert json.loads(out) == [{}, "false"]


def test_test_and_build_tools_are_extras_not_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip() for d in project["dependencies"]}
    assert names.isdisjoint(TOOLS), names & set(TOOLS)
    extras = project["optional-dependencies"]
    every_extra = " ".join(" ".join(v) for v in extras.values())
    assert all(tool in every_extra for tool in TOOLS)
    assert extras["dev"] == ["raftsched[test,chaos,proto,lint]"]  # what `make` installs holds them all

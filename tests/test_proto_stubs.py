"""The committed stubs in raftsched/v1 are exactly what `make proto` generates from proto/.

Regenerates them into a temporary directory with the Makefile's flags and compares byte for byte,
so an edited .proto without `make proto` (or a hand edit of a stub) fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
STUB_DIR = ROOT / "raftsched" / "v1"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _generate(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_DIR.parent)) for p in (PROTO_DIR / "raftsched" / "v1").glob("*.proto"))
    assert protos, "no .proto files under proto/raftsched/v1"
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iproto", f"--python_out={out}", f"--pyi_out={out}",
         f"--grpc_python_out={out}", *protos],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"protoc failed: {result.stderr}"
    return out / "raftsched" / "v1"


def _stubs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name.endswith(SUFFIXES)}


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    generated = _stubs(_generate(tmp_path))
    committed = _stubs(STUB_DIR)
    expected = {f"{p.stem}{s}" for p in (PROTO_DIR / "raftsched" / "v1").glob("*.proto") for s in SUFFIXES}
    assert set(generated) == expected
    assert sorted(committed) == sorted(generated), "stub files missing from or extra in raftsched/v1"
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"stale stubs (run `make proto` and commit): {stale}"

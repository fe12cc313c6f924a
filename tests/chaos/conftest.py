"""The checkers live in jepsen-style/ (a dash: not importable by name), so put it on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

JEPSEN_STYLE = Path(__file__).resolve().parents[2] / "jepsen-style"
if str(JEPSEN_STYLE) not in sys.path:
    sys.path.append(str(JEPSEN_STYLE))  # last: it must shadow nothing

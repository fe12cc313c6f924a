"""The Raft simulation's network (`tests/raft/sim/network.py`), imported under the name its
package has here: pytest puts tests/ on sys.path (packages `raft`, `scheduler`), while
`python -m tests.scheduler.sim.replay` and `make sim` import from the root (`tests.raft`)."""

from __future__ import annotations

import importlib

_network = importlib.import_module(("tests.raft" if __name__.startswith("tests.") else "raft") + ".sim.network")
Faults = _network.Faults
Network = _network.Network
NO_FAULTS = _network.NO_FAULTS

"""raftsched: a fault-tolerant job scheduling cluster on its own Raft log and RocksDB."""

import os

# grpc's fork handlers crash children started while a stream is busy (seen under uvloop with
# SIGSEGV in 4-10% of spawns); our processes never use grpc in a forked child, so turn them off.
# Must happen before grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

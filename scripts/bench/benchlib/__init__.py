"""The pieces of `scripts/bench/run.py`: one load generator for every system, the clusters under
test (raftsched, etcd, PySyncObj), the phases that measure them, and the report."""

"""raftsched: a fault-tolerant job scheduling cluster on its own Raft log and RocksDB.

Importing it changes nothing in the process (no environment, no logging); the `raftsched` entry
point (raftsched.cli) sets up what a raftsched process needs.
"""

"""Errors raised by the RocksDB storage layer.

    StoreError            the data directory cannot be used (locked, wrong format, I/O failure)
    └── CorruptionError   a stored record fails its checksum, cannot be decoded, or the log
                          breaks an invariant (gap, decreasing term); never repaired silently

The core's own `CompactedError` and `UnavailableError` (raftsched.raft.storage) are raised for
out-of-range reads, exactly as `MemoryStorage` raises them.
"""

from __future__ import annotations


class StoreError(Exception):
    """The node's data directory cannot be opened, read or written."""


class CorruptionError(StoreError):
    """Stored data is damaged or inconsistent; the message names the column family and key."""

"""Give freed heap memory back to the operating system (glibc's malloc_trim), now and then.

Why: a node allocates and frees a great deal in native code (protobuf messages, RocksDB blocks
and compaction buffers, gRPC frames). glibc keeps freed memory in its arenas for reuse, so the
resident size of a long-running node creeps up to its busiest moment and stays there, although
nothing holds it. Trimming every few seconds returns what is free; it costs a few milliseconds
of a thread that does not hold the GIL (ctypes releases it). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("raftsched.memtrim")


def _load() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load()


def trim() -> bool:
    """Return free heap pages to the OS; True when anything was given back (False: not glibc)."""
    return bool(_LIBC.malloc_trim(0)) if _LIBC is not None else False

"""What a webhook request looks like, and when a failed one is tried again. Pure functions.

    POST <sink url>
    Content-Type: application/json
    User-Agent: raftsched-notify/1
    X-Raftsched-Event-Id: e1234.0
    X-Raftsched-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the sink's secret>

    {"cluster":"prod","data":{...},"id":"e1234.0","time_ms":1764912000000,"type":"job.failed"}

The body is canonical JSON (sorted keys, no spaces), so every delivery of an event, by any
leader, carries the same bytes when the cluster name is the same. A sink without a secret gets no
signature header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from dataclasses import dataclass

from raftsched.v1 import notify_pb2

EVENT_ID_HEADER = "X-Raftsched-Event-Id"
SIGNATURE_HEADER = "X-Raftsched-Signature"
USER_AGENT = "raftsched-notify/1"


def body(event: notify_pb2.NotifyEvent, cluster: str) -> bytes:
    data = json.loads(event.data_json) if event.data_json else {}
    doc = {"id": event.id, "type": event.type, "time_ms": event.time_ms, "cluster": cluster, "data": data}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: bytes, payload: bytes) -> str:
    """The X-Raftsched-Signature value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, payload, hashlib.sha256).hexdigest()


def verify(secret: bytes, payload: bytes, header: str) -> bool:
    """What a receiver does (constant-time comparison); used by the tests and the examples."""
    return hmac.compare_digest(signature(secret, payload), header)


def headers(event: notify_pb2.NotifyEvent, secret: bytes, payload: bytes) -> dict[str, str]:
    out = {"Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_ID_HEADER: event.id}
    if secret:
        out[SIGNATURE_HEADER] = signature(secret, payload)
    return out


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff of a failed delivery: initial * 2^(failures-1), capped at `max_ms`, with +-20 %
    jitter; an event older than `horizon_ms` is given up (counted as expired)."""

    initial_ms: int = 1000
    max_ms: int = 300_000
    horizon_ms: int = 24 * 3_600_000
    timeout_ms: int = 10_000  # one request, connect included

    def __post_init__(self) -> None:
        if not 0 < self.initial_ms <= self.max_ms:
            raise ValueError(f"retry initial {self.initial_ms} ms must be > 0 and at most the max {self.max_ms} ms")
        if self.timeout_ms <= 0 or self.horizon_ms <= 0:
            raise ValueError("timeout and horizon must be > 0")

    def delay_ms(self, failures: int, rng: random.Random) -> int:
        """The wait after `failures` consecutive failures (>= 1)."""
        exponent = min(max(failures - 1, 0), 40)
        base = min(self.initial_ms * (1 << exponent), self.max_ms)
        return max(1, int(base * rng.uniform(0.8, 1.2)))

"""The webhook's bytes: canonical body, HMAC-SHA256 signature, headers, and the retry backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest

from raftsched.notify import webhook
from raftsched.notify.webhook import RetryPolicy
from raftsched.v1 import notify_pb2


def event() -> notify_pb2.NotifyEvent:
    return notify_pb2.NotifyEvent(id="e42.1", type="job.failed", time_ms=1_764_912_000_000,
                                  data_json='{"job_id":"j7","reason":"r"}')


def test_the_body_is_canonical_json_with_the_five_fields() -> None:
    payload = webhook.body(event(), "prod")
    assert payload == (b'{"cluster":"prod","data":{"job_id":"j7","reason":"r"},"id":"e42.1",'
                       b'"time_ms":1764912000000,"type":"job.failed"}')
    assert json.loads(payload)["data"] == {"job_id": "j7", "reason": "r"}
    assert webhook.body(event(), "prod") == payload  # the same event, the same bytes


def test_the_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    payload = b'{"id":"e1.0"}'
    # RFC 4231 style check against the standard library, and a fixed vector
    assert webhook.signature(b"key", payload) == "sha256=" + hmac.new(b"key", payload, hashlib.sha256).hexdigest()
    assert webhook.signature(b"key", b"The quick brown fox jumps over the lazy dog") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    assert webhook.verify(b"key", payload, webhook.signature(b"key", payload))
    assert not webhook.verify(b"other", payload, webhook.signature(b"key", payload))
    assert not webhook.verify(b"key", payload + b" ", webhook.signature(b"key", payload))


def test_headers_carry_the_id_and_a_signature_only_with_a_secret() -> None:
    payload = webhook.body(event(), "c")
    signed = webhook.headers(event(), b"s", payload)
    assert signed["X-Raftsched-Event-Id"] == "e42.1"
    assert signed["X-Raftsched-Signature"] == webhook.signature(b"s", payload)
    assert signed["Content-Type"] == "application/json"
    assert "X-Raftsched-Signature" not in webhook.headers(event(), b"", payload)


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(initial_ms=1000, max_ms=60_000)
    rng = random.Random(1)
    for failures, base in ((1, 1000), (2, 2000), (3, 4000), (7, 60_000), (500, 60_000)):
        for _ in range(50):
            assert 0.8 * base <= policy.delay_ms(failures, rng) <= 1.2 * base


def test_a_policy_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        RetryPolicy(initial_ms=0)
    with pytest.raises(ValueError, match="initial"):
        RetryPolicy(initial_ms=10_000, max_ms=1000)

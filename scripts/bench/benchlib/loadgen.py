"""The one load generator every system is measured with.

N asyncio workers each keep one request in flight; a run is bounded in time (and optionally in
count). Only requests that complete inside the measured window (after the warm-up) are counted.
Latencies go into a log-bucketed histogram (1 % wide buckets): memory stays bounded at any rate.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from raftsched.client.routing import Backoff

T = TypeVar("T")
Op = Callable[[int], Awaitable[object]]  # one request for worker i; raises when it failed
Observer = Callable[[float, float, bool], None]  # (start, end, ok) of every request, measured or not

_MIN_VALUE = 1e-6  # 1 µs: the smallest latency told apart
_GROWTH = 1.01


@dataclass
class Histogram:
    """Latencies in seconds, in buckets 1 % wide; exact count, sum, min and max."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = 0.0

    @staticmethod
    def bucket_of(value: float) -> int:
        if value <= _MIN_VALUE:
            return 0
        return int(math.log(value / _MIN_VALUE) / math.log(_GROWTH)) + 1

    @staticmethod
    def upper_bound(bucket: int) -> float:
        return _MIN_VALUE * _GROWTH ** bucket

    def record(self, value: float) -> None:
        b = self.bucket_of(value)
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def merge(self, other: Histogram) -> None:
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float:
        """The smallest recorded value's bucket bound with at least p % of values at or below it."""
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {p}")
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(max(self.upper_bound(b), self.min), self.max)
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


@dataclass
class LoadResult:
    concurrency: int
    seconds: float  # the measured window
    acked: int  # requests acknowledged inside the window
    errors: int
    latency: Histogram

    @property
    def throughput(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, float | int]:
        return {"concurrency": self.concurrency, "seconds": round(self.seconds, 3), "acked": self.acked,
                "errors": self.errors, "tput": round(self.throughput, 1),
                "p50_ms": round(self.latency.percentile(50) * 1e3, 3),
                "p99_ms": round(self.latency.percentile(99) * 1e3, 3),
                "mean_ms": round(self.latency.mean * 1e3, 3)}


@dataclass
class _Run:
    op: Op
    measure_from: float
    stop_at: float
    max_requests: int | None
    observer: Observer | None
    stop: asyncio.Event
    started: int = 0
    acked: int = 0
    errors: int = 0
    latency: Histogram = field(default_factory=Histogram)

    def may_start(self) -> bool:
        if self.stop.is_set() or time.perf_counter() >= self.stop_at:
            return False
        return self.max_requests is None or self.started < self.max_requests

    async def worker(self, index: int) -> None:
        while self.may_start():
            self.started += 1
            start = time.perf_counter()
            try:
                await self.op(index)
                ok = True
            except Exception:  # a failed request is counted, never fatal to the run
                ok = False
            end = time.perf_counter()
            if self.observer is not None:
                self.observer(start, end, ok)
            if self.measure_from <= end <= self.stop_at:  # steady state: whatever completes in the window
                self.count(ok, end - start)
            if not ok:
                await asyncio.sleep(0.01)  # a failing system must not turn the run into a busy loop

    def count(self, ok: bool, latency: float) -> None:
        if ok:
            self.acked += 1
            self.latency.record(latency)
        else:
            self.errors += 1


async def run_load(op: Op, concurrency: int, duration: float, *, warmup: float = 0.0,
                   max_requests: int | None = None, observer: Observer | None = None,
                   stop: asyncio.Event | None = None, drain_timeout: float = 30.0) -> LoadResult:
    """Run `concurrency` workers for warmup + duration seconds (or until `stop` is set)."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    begin = time.perf_counter()
    run = _Run(op, begin + warmup, begin + warmup + duration, max_requests, observer, stop or asyncio.Event())
    tasks = [asyncio.create_task(run.worker(i)) for i in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=warmup + duration + drain_timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    window = min(time.perf_counter(), run.stop_at) - run.measure_from
    return LoadResult(concurrency, max(window, 0.0), run.acked, run.errors, run.latency)


class Retrier:
    """The retry policy the anchors' clients share with raftsched's own: try the endpoint that last
    answered first, then the others at once; after a round where every endpoint failed, back off
    (raftsched.client.routing.Backoff: 50 ms doubling to 1 s, with jitter). Each attempt is capped."""

    def __init__(self, endpoints: Sequence[str], *, attempt_timeout: float = 1.0, timeout: float = 30.0,
                 backoff: Backoff | None = None) -> None:
        if not endpoints:
            raise ValueError("no endpoints")
        self.endpoints = list(endpoints)
        self.preferred = self.endpoints[0]
        self.attempt_timeout = attempt_timeout
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self._rng = random.Random()

    def order(self) -> list[str]:
        return [self.preferred, *(e for e in self.endpoints if e != self.preferred)]

    async def call(self, attempt: Callable[[str], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.timeout
        rounds = 0
        while True:
            last: BaseException | None = None
            for endpoint in self.order():
                try:
                    result = await asyncio.wait_for(attempt(endpoint), self.attempt_timeout)
                except (TimeoutError, Exception) as e:
                    last = e
                    continue
                self.preferred = endpoint
                return result
            rounds += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no endpoint answered: {last!r}")
            await asyncio.sleep(min(remaining, self.backoff.delay(rounds, self._rng)))

"""The cluster page's history: a Status sample once a second, kept for a few minutes.

From the samples come leader changes over time (bounded list), and submit and finish rates:

    submitted   the newest job's seq (seq counts submissions, so deletions do not disturb it)
    finished    jobs in a terminal state, from the leader's exact `job_counts`; history deleted
                by retention lowers it, so a window where it fell counts as 0, not negative

One sampler serves every viewer, so ten open cluster pages cost the cluster what one does. Reads
are stale (served by the node asked, the last known leader first): no ReadIndex round per sample.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from raftsched.client.aio import AsyncClient
from raftsched.client.calls import JobFilter
from raftsched.client.errors import ClientError
from raftsched.v1 import admin_pb2

log = logging.getLogger("raftsched.console")

EVERY_S = 1.0
KEEP_SAMPLES = 600  # ten minutes at one a second
KEEP_CHANGES = 50
CALL_TIMEOUT_S = 1.5
TERMINAL_NAMES = ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED")


@dataclass(frozen=True, slots=True)
class Sample:
    mono: float  # monotonic seconds, for rates
    at_ms: int  # wall clock, for people
    status: admin_pb2.StatusResponse | None
    error: str = ""
    submitted: int | None = None  # newest job's seq
    finished: int | None = None


@dataclass(frozen=True, slots=True)
class LeaderChange:
    at_ms: int
    leader: str  # "" while no node leads
    previous: str | None  # None: the first leader this console saw
    term: int


@dataclass(frozen=True, slots=True)
class Rates:
    submitted_per_s: float
    finished_per_s: float
    window_s: float


def leader_of(status: admin_pb2.StatusResponse) -> admin_pb2.NodeStatus | None:
    """The node that says it leads (the highest term, if a deposed one still thinks so)."""
    leaders = [n for n in status.nodes if n.role == admin_pb2.ROLE_LEADER]
    return max(leaders, key=lambda n: n.term) if leaders else None


def job_counts(status: admin_pb2.StatusResponse) -> dict[str, int]:
    """Exact jobs by state, from the leader, else from the node that applied the most."""
    with_counts = [n for n in status.nodes if n.job_counts]
    if not with_counts:
        return {}
    leader = leader_of(status)
    best = leader if leader is not None and leader.job_counts else max(with_counts, key=lambda n: n.applied_index)
    return dict(best.job_counts)


class Sampler:
    def __init__(self, client: AsyncClient, *, every_s: float = EVERY_S, keep: int = KEEP_SAMPLES,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._client = client
        self._every_s = every_s
        self.samples: deque[Sample] = deque(maxlen=keep)
        self.changes: deque[LeaderChange] = deque(maxlen=KEEP_CHANGES)
        self._leader: tuple[str, int] | None = None  # (id, term) last seen; None before the first answer
        self._clock, self._wall = clock, wall
        self.failures = 0

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    async def run(self) -> None:
        """Sample until cancelled. A cluster that cannot answer is a sample with an error; anything
        else is logged with its traceback and counted, and sampling goes on at the next tick."""
        while True:
            started = self._clock()
            try:
                self.observe(await self.sample_once())
            except Exception as e:
                self.failures += 1
                log.exception("console: status sample failed (%d so far)", self.failures)
                self.observe(Sample(self._clock(), int(self._wall() * 1000), None,
                                    error=f"console error: {type(e).__name__}"))
            await asyncio.sleep(max(0.0, self._every_s - (self._clock() - started)))

    async def sample_once(self) -> Sample:
        status_call = self._client.status(timeout=CALL_TIMEOUT_S)
        newest_call = self._client.list_jobs(page_size=1, stale=True, timeout=CALL_TIMEOUT_S,
                                             where=JobFilter(newest_first=True))
        status, newest = await asyncio.gather(status_call, newest_call, return_exceptions=True)
        now, wall_ms = self._clock(), int(self._wall() * 1000)
        if isinstance(status, BaseException):
            if not isinstance(status, ClientError):
                raise status
            return Sample(now, wall_ms, None, error=f"{status.code}: {status.message}")
        submitted = None
        if not isinstance(newest, BaseException):
            submitted = newest.jobs[0].seq if newest.jobs else 0
        counts = job_counts(status)
        finished = sum(counts.get(name, 0) for name in TERMINAL_NAMES) if counts else None
        return Sample(now, wall_ms, status, submitted=submitted, finished=finished)

    def observe(self, sample: Sample) -> None:
        """Keep the sample; note a leader change: another node (or none) leads, or the same one in a
        new term. Nothing is noted while the cluster cannot be asked (unknown is not a change)."""
        self.samples.append(sample)
        if sample.status is not None:
            node = leader_of(sample.status)
            current = (node.id, node.term) if node is not None else ("", max((n.term for n in sample.status.nodes),
                                                                              default=0))
            if self._leader is None or current[0] != self._leader[0] or (current[0] and current != self._leader):
                previous = self._leader[0] if self._leader is not None else None
                self.changes.appendleft(LeaderChange(sample.at_ms, current[0], previous, current[1]))
                if self._leader is None:
                    log.info("console: first status sample, leader %s", current[0] or "none")
            self._leader = current

    def rates(self, window_s: float) -> Rates | None:
        """Average rates over the last `window_s` seconds (None until two samples span it)."""
        usable = [s for s in self.samples if s.submitted is not None and s.finished is not None]
        if len(usable) < 2:
            return None
        last = usable[-1]
        first = next((s for s in usable if s.mono >= last.mono - window_s), usable[0])
        return _rates_between(first, last)

    def series(self, span_s: float = 300.0, step_s: float = 10.0) -> list[Rates]:
        """Rates over consecutive steps of the last `span_s` seconds, oldest first (for a sparkline)."""
        usable = [s for s in self.samples if s.submitted is not None and s.finished is not None]
        if len(usable) < 2:
            return []
        end = usable[-1].mono
        out: list[Rates] = []
        edges = [end - span_s + i * step_s for i in range(int(span_s / step_s) + 1)]
        for lo, hi in itertools.pairwise(edges):
            inside = [s for s in usable if lo <= s.mono <= hi]
            rates = _rates_between(inside[0], inside[-1]) if len(inside) >= 2 else None
            out.append(rates if rates is not None else Rates(0.0, 0.0, step_s))
        return out


def _rates_between(first: Sample, last: Sample) -> Rates | None:
    span = last.mono - first.mono
    if span <= 0 or first.submitted is None or last.submitted is None:
        return None
    assert first.finished is not None and last.finished is not None
    return Rates(max(0, last.submitted - first.submitted) / span, max(0, last.finished - first.finished) / span, span)

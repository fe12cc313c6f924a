"""`/`: the nodes, leader changes over time, jobs by state, submit and finish rates.

Drawn from the console's sampler (one Status a second for every viewer), so the page itself asks
the cluster nothing once the first sample is in.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import console_of, visitor_of
from ..fmt import JOB_STATES
from ..sampler import job_counts, leader_of
from . import flash

RATE_SPAN_S = 300.0
RATE_STEP_S = 10.0


async def cluster_page(request: Request) -> Response:
    console = console_of(request)
    visitor = visitor_of(request)
    sampler = console.sampler
    assert sampler is not None
    sample = sampler.latest
    if sample is None:  # the console just started: ask now rather than show nothing
        sample = await sampler.sample_once()
        sampler.observe(sample)
    status = sample.status
    counts = job_counts(status) if status is not None else {}
    series = sampler.series(RATE_SPAN_S, RATE_STEP_S)
    context = {
        "sample": sample, "status": status, "leader": leader_of(status) if status is not None else None,
        "counts": [(name, counts.get(name, 0)) for name in JOB_STATES], "total": sum(counts.values()),
        "has_counts": bool(counts), "changes": list(sampler.changes)[:20],
        "rates": [("last 10 s", sampler.rates(10)), ("last minute", sampler.rates(60))],
        "submit_series": [r.submitted_per_s for r in series], "finish_series": [r.finished_per_s for r in series],
        "peak": max([0.0, *(r.submitted_per_s for r in series), *(r.finished_per_s for r in series)]),
        "flash": flash(request.query_params.get("ok")),
    }
    return console.renderer.page(request, visitor, "cluster.html", context, partial="_cluster.html")

"""Page-sized reads of a cluster that may hold millions of jobs: nothing here counts or loads all.

`ListJobs` walks an index and looks at a bounded number of jobs per request, so a page of a narrow
filter may come back short (even empty) with a token: `job_page` keeps following it until the
page is full, the walk ends, or its time budget is spent (the page then says it was cut short and
links on from where it stopped).

The server keeps no index from a job to the jobs that depend on it, so `dependents` walks the
jobs submitted after it (a dependent names existing jobs, so it is always newer), oldest first,
within a bound, and says whether it looked at all of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from raftsched.client.aio import AsyncClient
from raftsched.client.calls import JobFilter
from raftsched.client.errors import ClientError
from raftsched.v1 import jobs_pb2

from .forms import JobFilters

PAGE_SIZE = 50
PAGE_BUDGET_S = 0.2  # keeps a page under 300 ms when a filter matches little
DEPENDENTS_PAGE = 500
DEPENDENTS_LOOK_AT = 5000
DEPENDENTS_BUDGET_S = 1.0
MAX_DEPENDENCIES_SHOWN = 20


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[jobs_pb2.Job]
    next_token: str  # "" when the walk is complete
    cut_short: bool  # the budget ran out before the page was full: more may match further on


async def job_page(client: AsyncClient, filters: JobFilters, *, size: int = PAGE_SIZE,
                   budget_s: float = PAGE_BUDGET_S, stale: bool = False,
                   clock: Callable[[], float] = time.monotonic) -> JobPage:
    """Up to `size` jobs matching `filters`, newest first, from `filters.page` on."""
    where = JobFilter(newest_first=True, name=filters.name, labels=filters.labels)
    deadline = clock() + budget_s
    jobs: list[jobs_pb2.Job] = []
    token = filters.page
    while True:
        response = await client.list_jobs(filters.state_value, filters.schedule, size - len(jobs), token, stale,
                                          where=where)
        jobs.extend(response.jobs)
        token = response.next_page_token
        if len(jobs) >= size or not token:
            return JobPage(jobs, token, cut_short=False)
        if clock() >= deadline:
            return JobPage(jobs, token, cut_short=True)


async def dependencies(client: AsyncClient, job: jobs_pb2.Job) -> list[tuple[str, jobs_pb2.Job | None]]:
    """The jobs this one depends on, read together; None for one that is gone (NOT_FOUND)."""
    ids = list(job.spec.depends_on)[:MAX_DEPENDENCIES_SHOWN]
    found = await asyncio.gather(*(client.get_job(i) for i in ids), return_exceptions=True)
    out: list[tuple[str, jobs_pb2.Job | None]] = []
    for job_id, result in zip(ids, found, strict=True):
        if isinstance(result, ClientError) and result.code == "NOT_FOUND":
            out.append((job_id, None))
        elif isinstance(result, BaseException):
            raise result
        else:
            out.append((job_id, result))
    return out


@dataclass(frozen=True, slots=True)
class Dependents:
    jobs: list[jobs_pb2.Job]
    looked_at: int
    complete: bool  # every job submitted after this one was looked at


async def dependents(client: AsyncClient, job: jobs_pb2.Job, *, look_at: int = DEPENDENTS_LOOK_AT,
                     budget_s: float = DEPENDENTS_BUDGET_S, clock: Callable[[], float] = time.monotonic,
                     ) -> Dependents:
    """Jobs that name `job` in depends_on, among (at most `look_at`) jobs submitted after it."""
    where = JobFilter(created_after_ms=job.submitted_ms)
    deadline = clock() + budget_s
    found: list[jobs_pb2.Job] = []
    looked, token = 0, ""
    while True:
        page = await client.list_jobs(page_size=min(DEPENDENTS_PAGE, look_at - looked), page_token=token,
                                      stale=True, where=where)
        looked += sum(1 for j in page.jobs if j.id != job.id)
        found.extend(j for j in page.jobs if job.id in j.spec.depends_on)
        token = page.next_page_token
        if not token:
            return Dependents(found, looked, complete=True)
        if looked >= look_at or clock() >= deadline:
            return Dependents(found, looked, complete=False)

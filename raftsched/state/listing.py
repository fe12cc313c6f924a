"""What `ListJobs` asks for, checked once, and how a page of a walk is cut.

A walk goes through one ordered index (every job by seq, the jobs of one state, or the jobs of one
schedule) from the page token on, oldest or newest first, and keeps the jobs that match the
filters. The token is the last seq looked at, so it stays valid while jobs are added or deleted:
a full walk meets each surviving job exactly once. One page looks at no more than `scan_limit`
jobs, so a filter that matches little costs a bounded amount per request (the page then comes
back short, even empty, with a token to go on).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from raftsched.quoting import quote
from raftsched.state.validate import ValidationError
from raftsched.v1 import jobs_pb2, scheduler_pb2

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
SCAN_LIMIT = 20_000  # jobs one page may look at
MAX_NAME_FILTER = 200
MAX_LABEL_FILTERS = 16


@dataclass(frozen=True, slots=True)
class JobQuery:
    state: int = 0
    schedule: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    after: int | None = None  # the token: continue past this seq (in the walk's direction)
    newest_first: bool = False
    created_after_ms: int = 0
    created_before_ms: int = 0
    name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    scan_limit: int = SCAN_LIMIT

    def matches(self, job: jobs_pb2.Job) -> bool:
        """The filters besides the index walked (state and schedule are checked too: cheap)."""
        if (self.state and job.state != self.state) or (self.schedule and job.schedule_id != self.schedule):
            return False
        if job.submitted_ms < self.created_after_ms:
            return False
        if self.created_before_ms and job.submitted_ms >= self.created_before_ms:
            return False
        if self.name and self.name not in job.spec.name:
            return False
        return all(job.spec.labels.get(k) == v for k, v in self.labels.items())


def query_from_request(request: scheduler_pb2.ListJobsRequest) -> JobQuery:
    """Check a request's fields, naming the first bad one (ValidationError)."""
    if request.page_size > MAX_PAGE_SIZE:
        raise ValidationError("page_size", f"at most {MAX_PAGE_SIZE}")
    if request.state and request.state not in jobs_pb2.JobState.values():
        raise ValidationError("state", f"unknown job state {request.state}")
    if len(request.name) > MAX_NAME_FILTER:
        raise ValidationError("name", f"at most {MAX_NAME_FILTER} characters")
    if len(request.labels) > MAX_LABEL_FILTERS:
        raise ValidationError("labels", f"at most {MAX_LABEL_FILTERS} label filters")
    if request.created_before_ms and request.created_before_ms <= request.created_after_ms:
        raise ValidationError("created_before_ms", "must be after created_after_ms")
    return JobQuery(
        state=request.state,
        schedule=request.schedule,
        page_size=request.page_size or DEFAULT_PAGE_SIZE,
        after=parse_token(request.page_token),
        newest_first=request.newest_first,
        created_after_ms=request.created_after_ms,
        created_before_ms=request.created_before_ms,
        name=request.name,
        labels=dict(request.labels),
    )


def parse_token(token: str) -> int | None:
    if not token:
        return None
    if not token.isdigit() or len(token) > 19 or int(token) >= 2**63:
        raise ValidationError("page_token", f"{quote(token)} is not a token this server returned")
    return int(token)


def cut_page(query: JobQuery, walk: Iterable[tuple[int, jobs_pb2.Job | None]]
             ) -> tuple[list[jobs_pb2.Job], str]:
    """Take matching jobs from `walk` ((seq, job or None when it vanished), in walk order) until
    the page is full or the scan limit is reached; returns the page and the next token."""
    page: list[jobs_pb2.Job] = []
    last = None
    for looked, (seq, job) in enumerate(walk, start=1):
        if job is not None and query.matches(job):
            if len(page) == query.page_size:
                return page, str(last)  # one more matched: there is a next page
            page.append(job)
        last = seq
        if looked >= query.scan_limit:
            return page, str(last)
    return page, ""


def seqs_after(seqs: Iterator[int], query: JobQuery) -> Iterator[int]:
    """Helper for in-memory ordered seqs: those past the token in the walk's direction."""
    after = query.after
    for seq in seqs:
        if after is None or (seq < after if query.newest_first else seq > after):
            yield seq

"""Prometheus metrics of one node, served on `--metrics-listen HOST:PORT` at `/metrics`.

Two kinds, so the hot path stays cheap:

- **events** (counters and histograms) are bumped where they happen: the driver reports each
  persisted ready and each finished proposal (`DriverObserver`), the node reports leader changes
  and snapshots, and a job listener (attached only while this node leads) sees dispatches and the
  ends of attempts;
- **levels** (term, role, indexes, jobs by state, executors) are read from the node at scrape time
  by `NodeCollector`; nothing is kept up to date between scrapes.

Every metric lives in the node's own `CollectorRegistry` (no process-global state), and the HTTP
endpoint runs on the node's event loop, so a scrape reads node state on the thread that owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter as Counter_
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from raftsched.raft.core import Status
from raftsched.raft.messages import Role, SoftState
from raftsched.state.notify import EVENT_TYPES
from raftsched.v1 import jobs_pb2

if TYPE_CHECKING:
    from raftsched.seams import MetricsSource

log = logging.getLogger("raftsched.metrics")
J = jobs_pb2

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
SIZE_BUCKETS = tuple(float(1 << n) for n in range(10, 34, 2))  # 1 KiB .. 8 GiB
ROLE_NAMES = {Role.FOLLOWER: "follower", Role.PRE_CANDIDATE: "pre_candidate", Role.CANDIDATE: "candidate",
              Role.LEADER: "leader"}
SEEN_JOBS = 50_000  # jobs whose last counted attempt event is remembered (to count each once)
# Label values set to 0 at start, so every series exists before its first event (alerts and
# dashboards can divide by them, and a scrape of a fresh node shows every name).
PROPOSAL_OUTCOMES = ("applied", "unknown", "error")
SNAPSHOT_KINDS = ("taken", "installed")
ATTEMPT_ENDS = tuple(name.removeprefix("ATTEMPT_END_").lower() for name, value in J.AttemptEnd.items() if value)
FINAL_STATES = {J.JOB_STATE_SUCCEEDED: "succeeded", J.JOB_STATE_FAILED: "failed",
                J.JOB_STATE_CANCELLED: "cancelled", J.JOB_STATE_SKIPPED: "skipped"}
BACKUP_OUTCOMES = ("completed", "failed")
EXECUTOR_STATES = tuple((value, name.removeprefix("EXECUTOR_STATE_").lower())
                        for name, value in J.ExecutorState.items() if value)
HTTP_REQUEST_LIMIT = 16 << 10
HTTP_TIMEOUT_S = 5.0


class NodeMetrics:
    """The event metrics of one node, its scrape-time collector, and the HTTP endpoint."""

    def __init__(self, node: MetricsSource) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.leader_changes = Counter("raftsched_leader_changes", "Changes of the leader this node knows of",
                                      registry=r)
        self.proposals = Counter("raftsched_proposals", "Proposals made on this node, by outcome", ["outcome"],
                                 registry=r)
        self.commit_seconds = Histogram("raftsched_proposal_commit_seconds", "Propose to applied on the leader",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.fsync_seconds = Histogram("raftsched_fsync_seconds", "Synced persist of one ready (log entries, "
                                       "term/vote, snapshot) to RocksDB", buckets=LATENCY_BUCKETS, registry=r)
        self.batch_entries = Histogram("raftsched_persist_batch_entries", "Log entries written per persisted ready",
                                       buckets=BATCH_BUCKETS, registry=r)
        self.snapshots = Counter("raftsched_snapshots", "Snapshots, by kind: taken (for a follower or a backup), "
                                 "installed (received from the leader)", ["kind"], registry=r)
        self.snapshot_bytes = Histogram("raftsched_snapshot_bytes", "Size of snapshots, by kind", ["kind"],
                                        buckets=SIZE_BUCKETS, registry=r)
        self.snapshot_make_seconds = Gauge("raftsched_snapshot_make_seconds", "How long the last snapshot this "
                                           "node made took (another process reads RocksDB)", registry=r)
        self.snapshot_loop_stall = Gauge("raftsched_snapshot_loop_stall_seconds", "The longest event-loop stall "
                                         "while the last snapshot was made", registry=r)
        self.compactions = Counter("raftsched_log_compactions", "Log compactions behind a snapshot", registry=r)
        self.dispatch_seconds = Histogram("raftsched_dispatch_seconds", "Submit to first assignment of a job "
                                          "(leader-stamped times)", buckets=DISPATCH_BUCKETS, registry=r)
        self.attempts_ended = Counter("raftsched_attempts_ended", "Attempts that ended, by how", ["end"], registry=r)
        self.requeued = Counter("raftsched_attempts_requeued", "Attempts whose job went back to QUEUED for "
                                "another attempt (failure, timeout, lost executor, lapsed lease)", registry=r)
        self.fenced = Counter("raftsched_attempts_fenced", "Attempts an executor killed because its lease "
                              "lapsed (ATTEMPT_END_FENCED)", registry=r)
        self.stale_cancelled = Counter("raftsched_stale_attempts_cancelled", "Non-current attempts an executor "
                                       "still ran, that the leader told it to kill", registry=r)
        self.jobs_ended = Counter("raftsched_jobs_ended", "Jobs that reached a final state while this node led, "
                                  "by state (succeeded, failed, cancelled, skipped)", ["state"], registry=r)
        self.backups = Counter("raftsched_backups", "Backups (`raftsched snapshot save`) this node streamed, by "
                               "outcome: completed (every byte sent) or failed", ["outcome"], registry=r)
        self.last_backup = Gauge("raftsched_last_backup_timestamp_seconds", "Unix time at which this node last "
                                 "finished streaming a backup; 0 since it started if none", registry=r)
        _preset(self.proposals, PROPOSAL_OUTCOMES)
        _preset(self.snapshots, SNAPSHOT_KINDS)
        _preset(self.attempts_ended, ATTEMPT_ENDS)
        _preset(self.jobs_ended, FINAL_STATES.values())
        _preset(self.backups, BACKUP_OUTCOMES)
        r.register(NodeCollector(node))
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, ...
        self._leader = ""
        self._seen: OrderedDict[str, tuple[int, bool]] = OrderedDict()  # job -> (attempt, ended) counted
        self._ended: OrderedDict[str, None] = OrderedDict()  # jobs whose final state was counted
        self._listening = False
        self._server: asyncio.Server | None = None

    # --- the driver's observer (raftsched.raft_driver.DriverObserver) ---

    def persisted(self, seconds: float, entries: int, synced: bool) -> None:
        if synced:
            self.fsync_seconds.observe(seconds)
        if entries:
            self.batch_entries.observe(entries)

    def proposal_done(self, seconds: float, outcome: str) -> None:
        self.proposals.labels(outcome).inc()
        if outcome == "applied":
            self.commit_seconds.observe(seconds)

    # --- node events ---

    def soft_state(self, soft: SoftState) -> None:
        if soft.leader != self._leader:
            if soft.leader:
                self.leader_changes.inc()
            self._leader = soft.leader
        leading = soft.role is Role.LEADER
        if leading and not self._listening:
            self.node.sm.add_listener(self.job_changed)
        elif not leading and self._listening:
            self.node.sm.remove_listener(self.job_changed)
        self._listening = leading

    def snapshot(self, kind: str, size: int) -> None:
        self.snapshots.labels(kind).inc()
        self.snapshot_bytes.labels(kind).observe(size)

    def snapshot_made(self, seconds: float, loop_stall: float) -> None:
        self.snapshot_make_seconds.set(seconds)
        self.snapshot_loop_stall.set(loop_stall)

    def backup_finished(self, *, completed: bool) -> None:
        self.backups.labels("completed" if completed else "failed").inc()
        if completed:
            self.last_backup.set(time.time())

    def job_changed(self, job: jobs_pb2.Job) -> None:
        """A job listener on the leader: counts each dispatch, each attempt's end and each job's end once."""
        final = FINAL_STATES.get(job.state)
        if final is not None and job.id not in self._ended:
            self._ended[job.id] = None
            if len(self._ended) > SEEN_JOBS:
                self._ended.popitem(last=False)
            self.jobs_ended.labels(final).inc()
        if not job.attempts:
            return
        last = job.attempts[-1]
        ended = last.end != J.ATTEMPT_END_UNSPECIFIED
        if self._seen.get(job.id) == (last.number, ended):
            return
        self._remember(job.id, (last.number, ended))
        if not ended:
            if last.number == 1 and job.state == J.JOB_STATE_ASSIGNED and not job.spec.depends_on:
                self.dispatch_seconds.observe(max(0, last.assigned_ms - job.submitted_ms) / 1000)
            return
        self.attempts_ended.labels(J.AttemptEnd.Name(last.end).removeprefix("ATTEMPT_END_").lower()).inc()
        if last.end == J.ATTEMPT_END_FENCED:
            self.fenced.inc()
        if job.state == J.JOB_STATE_QUEUED:
            self.requeued.inc()

    def _remember(self, job_id: str, value: tuple[int, bool]) -> None:
        self._seen[job_id] = value
        self._seen.move_to_end(job_id)
        if len(self._seen) > SEEN_JOBS:
            self._seen.popitem(last=False)

    # --- the endpoint ---

    async def start(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._server = await asyncio.start_server(self._serve, host.strip("[]"), int(port),
                                                  limit=HTTP_REQUEST_LIMIT)
        log.info("node %s serves metrics on http://%s/metrics", self.node.id, listen)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP/1.0-style exchange: GET /metrics, then close."""
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(self._response(head))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _response(self, head: bytes) -> bytes:
        parts = head.split(b"\r\n", 1)[0].split()
        method, path = (parts[0], parts[1].split(b"?")[0]) if len(parts) >= 2 else (b"", b"")
        if method not in (b"GET", b"HEAD") or path not in (b"/metrics", b"/"):
            return _http(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")
        body = generate_latest(self.registry)
        return _http(200, CONTENT_TYPE_LATEST, body if method == b"GET" else b"", len(body))


def _http(status: int, content_type: str, body: bytes, length: int | None = None) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class NodeCollector(Collector):
    """Levels read from the node at scrape time (on the event loop: see NodeMetrics._serve)."""

    def __init__(self, node: MetricsSource) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        yield from self._raft()
        yield from self._driver()
        yield from self._jobs()
        yield from self._schedules()
        yield from self._executors()
        yield from self._notify()
        yield self._requests()

    def _requests(self) -> Metric:
        refused = CounterMetricFamily("raftsched_requests_refused", "Requests refused before any servicer ran "
                                      "(unparsable: a body that is no message of the call's type), by method "
                                      "and reason", labels=["method", "reason"])
        for (method, reason), count in sorted(self.node.request_refusals.counts.items()):
            refused.add_metric([method, reason], count)
        return refused

    def _raft(self) -> Iterator[Metric]:
        node = self.node
        st = node.driver.status()
        yield _gauge("raftsched_term", "Current Raft term", st.term)
        role = "learner" if node.id not in st.config.voters else ROLE_NAMES[st.role]
        roles = GaugeMetricFamily("raftsched_role", "1 for this node's current role", labels=["role"])
        for name in (*ROLE_NAMES.values(), "learner"):
            roles.add_metric([name], 1.0 if name == role else 0.0)
        yield roles
        yield _gauge("raftsched_is_leader", "1 when this node is the leader", st.role is Role.LEADER)
        yield _gauge("raftsched_has_leader", "1 when this node knows a leader", bool(st.leader))
        yield _gauge("raftsched_commit_index", "Highest log index known committed", st.commit)
        yield _gauge("raftsched_applied_index", "Highest log index applied to the state machine",
                     node.driver.applied_index)
        yield _gauge("raftsched_last_log_index", "Last index in this node's log", st.last_index)
        yield _gauge("raftsched_snapshot_index", "Index of the latest snapshot (log compacted up to here)",
                     st.first_index - 1)
        yield _gauge("raftsched_event_loop_stall_seconds", "The longest event-loop stall in the last 10 s",
                     node.loop_watch.longest_since(time.monotonic() - 10))
        memory = GaugeMetricFamily("raftsched_rocksdb_memory_bytes", "RocksDB memory: memtables of every "
                                   "family, and the shared block cache", labels=["kind"])
        for kind, size in node.db.memory_bytes().items():
            memory.add_metric([kind], size)
        yield memory
        members = GaugeMetricFamily("raftsched_members", "Cluster members by kind", labels=["kind"])
        members.add_metric(["voter"], len(st.config.voters))
        members.add_metric(["learner"], len(st.config.learners))
        yield members
        contact = 0.0 if st.role is Role.LEADER else time.monotonic() - node.driver.last_leader_contact
        yield _gauge("raftsched_leader_contact_age_seconds", "Seconds since this node last heard from a leader "
                     "(0 on the leader)", contact)
        yield from self._peers(st)

    def _peers(self, st: Status) -> Iterator[Metric]:
        """The leader's view of each other member's log (empty on other nodes)."""
        match = GaugeMetricFamily("raftsched_peer_match_index", "On the leader: the highest log index each "
                                  "other member is known to hold", labels=["peer"])
        lag = GaugeMetricFamily("raftsched_peer_lag_entries", "On the leader: entries of its log each other "
                                "member has not acknowledged yet", labels=["peer"])
        for peer, (matched, _next, _state) in sorted(st.progress.items()):
            if peer != self.node.id:
                match.add_metric([peer], matched)
                lag.add_metric([peer], max(0, st.last_index - matched))
        yield match
        yield lag

    def _driver(self) -> Iterator[Metric]:
        driver = self.node.driver
        counters = driver.counters
        yield _gauge("raftsched_pending_proposals", "Proposals waiting for commit on this node",
                     driver.pending_proposals)
        yield _gauge("raftsched_max_pending_proposals", "The limit above which proposals are refused",
                     driver.max_pending_proposals)
        yield _counter("raftsched_proposals_refused", "Proposals refused with RESOURCE_EXHAUSTED (overload)",
                       counters.proposals_refused)
        refused = CounterMetricFamily("raftsched_raft_messages_refused", "Raft messages refused, by reason (at "
                                      "the transport or by the core); they changed nothing", labels=["reason"])
        for reason, count in driver.refused_counts().items():
            refused.add_metric([reason.value], count)
        yield refused
        yield _counter("raftsched_readies", "Raft readies processed", counters.readies)
        writes = CounterMetricFamily("raftsched_log_writes", "Persisted readies, by whether they were synced",
                                     labels=["synced"])
        writes.add_metric(["true"], counters.synced_writes)
        writes.add_metric(["false"], counters.unsynced_writes)
        yield writes
        yield _counter("raftsched_entries_persisted", "Log entries written", counters.entries_persisted)
        yield _gauge("raftsched_log_bytes_since_compaction", "Log bytes written since the last compaction",
                     driver.bytes_since_compaction)
        failures = CounterMetricFamily("raftsched_loop_failures", "Background loops and tasks of this node that "
                                       "raised (each logged with its traceback; loops restart with backoff)",
                                       labels=["loop"])
        for name, count in sorted(self.node.loop_failures.items()):
            failures.add_metric([name], count)
        yield failures

    def _jobs(self) -> Iterator[Metric]:
        counts = self.node.sm.counters()
        jobs = GaugeMetricFamily("raftsched_jobs", "Jobs in the state machine, by state", labels=["state"])
        for name, value in J.JobState.items():
            if value:
                state = name.removeprefix("JOB_STATE_").lower()
                jobs.add_metric([state], counts.get(f"jobs_{state}", 0))
        yield jobs
        yield _counter("raftsched_stale_results_refused", "Results carrying a stale attempt number, refused "
                       "and recorded (replicated: the same on every node)", counts["stale_results_refused"])
        yield _counter("raftsched_refused_commands", "Commands the state machine refused at apply",
                       counts["refused_commands"])
        yield _counter("raftsched_jobs_purged", "Finished jobs deleted by retention or schedule history limits "
                       "(replicated)", counts["jobs_purged"])
        yield _counter("raftsched_idempotency_keys_forgotten", "Idempotency keys forgotten (window ended or "
                       "job deleted; replicated)", counts["keys_forgotten"])
        yield _gauge("raftsched_schedules", "Recurring schedules", counts.get("schedules", 0))
        alarms = GaugeMetricFamily("raftsched_alarms", "Active alarms in the cluster (replicated)", labels=["alarm"])
        active = Counter_([a.alarm for a in self.node.sm.alarms()])
        for name in ("CORRUPT", *sorted(set(active) - {"CORRUPT"})):
            alarms.add_metric([name], active.get(name, 0))
        yield alarms
        checks = CounterMetricFamily("raftsched_corruption_checks", "The leader's replica comparisons, by result",
                                     labels=["result"])
        for result in ("match", "mismatch", "incomplete", "failed"):
            checks.add_metric([result], self.node.scheduler.corruption.checks.get(result, 0))
        yield checks

    def _schedules(self) -> Iterator[Metric]:
        """Per schedule, from the replicated records (the same on every node, kept across restarts)."""
        fired = CounterMetricFamily("raftsched_schedule_fired_times", "Scheduled times a schedule fired "
                                    "(replicated)", labels=["schedule"])
        skipped = CounterMetricFamily("raftsched_schedule_skipped_times", "Scheduled times a schedule did not "
                                      "fire, any reason: missed, overlap, paused, outside-window (replicated)",
                                      labels=["schedule"])
        paused = GaugeMetricFamily("raftsched_schedule_paused", "1 while a schedule is paused", labels=["schedule"])
        for schedule in self.node.sm.schedules():
            fired.add_metric([schedule.spec.name], schedule.fired_count)
            skipped.add_metric([schedule.spec.name], schedule.skipped_count)
            paused.add_metric([schedule.spec.name], 1.0 if schedule.paused else 0.0)
        yield fired
        yield skipped
        yield paused

    def _executors(self) -> Iterator[Metric]:
        node = self.node
        connected = len(node.scheduler.sessions) if node.is_leader else 0
        yield _gauge("raftsched_executors_connected", "Executor streams open to this node (the leader)",
                     connected)
        refused = CounterMetricFamily("raftsched_executor_messages_refused", "What executors sent that this node "
                                      "refused while leading, by kind (register, message, running, started, "
                                      "finished) and reason; none of it was proposed", labels=["kind", "reason"])
        for (kind, reason), count in sorted(node.scheduler.refusals.counts.items()):
            refused.add_metric([kind.value, reason.value], count)
        yield refused
        errors = CounterMetricFamily("raftsched_leader_loop_errors", "Leader loops that raised (logged with their "
                                     "traceback, then restarted with backoff), by loop", labels=["loop"])
        for loop, count in sorted(node.scheduler.loop_errors.items()):
            errors.add_metric([loop], count)
        yield errors
        if not node.is_leader:
            return
        by_state = GaugeMetricFamily("raftsched_executors", "Known executors by state (on the leader)",
                                     labels=["state"])
        each = GaugeMetricFamily("raftsched_executor_state", "On the leader: 1 for each known executor's current "
                                 "state (connected, disconnected, down, draining, quarantined), 0 for the others",
                                 labels=["executor", "state"])
        views = node.scheduler.executor_view()
        for value, name in EXECUTOR_STATES:
            by_state.add_metric([name], sum(1 for e in views if e.state == value))
        for view in sorted(views, key=lambda e: e.id):
            for value, name in EXECUTOR_STATES:
                each.add_metric([view.id, name], 1.0 if view.state == value else 0.0)
        yield by_state
        yield each
        yield _gauge("raftsched_retries_waiting_budget", "Retries the leader's last dispatch round left queued "
                     "for want of a retry-budget token (promise 14)", node.scheduler.retries_waiting())


    def _notify(self) -> Iterator[Metric]:
        """Notification events and deliveries (SPEC §10); replicated, the same on every node."""
        sm = self.node.sm
        events = CounterMetricFamily("raftsched_notify_events", "Notification events made, by type "
                                     "(replicated; made once whatever the number of sinks)", labels=["type"])
        counts = sm.event_counts()
        for kind in EVENT_TYPES:
            events.add_metric([kind], counts.get(kind, 0))
        yield events
        sinks = sm.notify_sinks()
        results = CounterMetricFamily("raftsched_notify_deliveries", "Webhook deliveries by result, over every "
                                      "sink: delivered (2xx), failed (an attempt, retried), expired (given up "
                                      "after the retry horizon), dropped (a full outbox)", labels=["result"])
        for result, field in (("delivered", "delivered"), ("failed", "failed_attempts"), ("expired", "expired"),
                              ("dropped", "dropped")):
            results.add_metric([result], sum(getattr(s, field) for s in sinks))
        yield results
        depth = GaugeMetricFamily("raftsched_notify_queue_depth", "Events waiting for delivery, by sink",
                                  labels=["sink"])
        for sink in sinks:
            depth.add_metric([sink.name], sink.pending)
        yield depth


def _preset(metric: Counter, values: Iterable[str]) -> None:
    for value in values:
        metric.labels(value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))

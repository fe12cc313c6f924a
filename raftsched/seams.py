"""The narrow seams between a node's parts: what the servicers (raftsched.api), the metrics and
the leader's scheduler may use of a node, as small protocols.

    Proposer         puts a command in the replicated log and waits for its result; read barrier
    StateReader      the state machine's read side (jobs, executors, schedules, alarms, counters)
    ClusterControl   the Raft node as servicers may see and steer it: status, membership, leadership
                     transfer, committed log reads. Implemented by RaftDriver: nothing outside the
                     driver touches `driver.core`.
    LocalNode        who this node is, where the leader is, this node's alarms and status
    Backups          snapshots for backups and the corruption check's digests
    LeaderScheduling the leader-only scheduler as the servicers and metrics see it
    MetricsSource    what the scrape-time collector reads (raftsched.metrics)

`raftsched.node.Node` (and its RaftDriver, SchedulerState, LeaderScheduler) implement them
structurally; the modules that depend on them never import raftsched.node (an import-linter
contract in pyproject.toml checks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from raftsched.raft.config import ConfigChange
from raftsched.raft.core import Status
from raftsched.raft.messages import ConfigState, Entry, SnapshotMeta
from raftsched.v1 import admin_pb2, commands_pb2, executor_pb2, jobs_pb2, notify_pb2, scheduler_pb2

if TYPE_CHECKING:
    from raftsched.raft.refusals import Reason
    from raftsched.raft_driver import DriverCounters
    from raftsched.snapshotting import Snapshot
    from raftsched.state.listing import JobQuery
    from raftsched.state.machine import JobListener


class Proposer(Protocol):
    """Replicates commands through the leader's log."""

    async def propose(self, cmd: commands_pb2.Command, timeout: float = 10.0) -> commands_pb2.ApplyResult: ...

    async def read_barrier(self, timeout: float = 5.0) -> None:
        """Wait until this leader may serve a linearizable read (ReadIndex)."""
        ...


class StateReader(Protocol):
    """The state machine, read only."""

    @property
    def applied_index(self) -> int: ...

    def get_job(self, job_id: str) -> jobs_pb2.Job | None: ...

    def job_by_key(self, key: str) -> jobs_pb2.Job | None: ...

    def list_jobs(self, query: JobQuery) -> tuple[list[jobs_pb2.Job], str]: ...

    def executor(self, executor_id: str) -> jobs_pb2.ExecutorInfo | None: ...

    def check_fence(self, job_id: str, attempt: int) -> scheduler_pb2.CheckFenceResponse: ...

    def schedules(self) -> list[scheduler_pb2.Schedule]: ...

    def schedule(self, name: str) -> scheduler_pb2.Schedule | None: ...

    def known_handlers(self) -> frozenset[str]: ...

    def alarms(self) -> list[admin_pb2.Alarm]: ...

    def counters(self) -> dict[str, int]: ...

    def notify_sinks(self) -> list[notify_pb2.NotifySink]: ...

    def notify_sink(self, name: str) -> notify_pb2.NotifySink | None: ...

    def event_counts(self) -> dict[str, int]: ...

    def add_listener(self, callback: JobListener) -> None: ...

    def remove_listener(self, callback: JobListener) -> None: ...


class ClusterControl(Protocol):
    """The Raft node, seen and steered only through its driver (raftsched.raft_driver.RaftDriver)."""

    applied_index: int

    def status(self) -> Status: ...

    @property
    def conf(self) -> ConfigState: ...

    @property
    def is_leader(self) -> bool: ...

    def transfer_leader(self, target: str) -> None: ...

    def match_index(self, peer: str) -> int | None:
        """How far `peer`'s log matches ours (on the leader; None when not known)."""
        ...

    def propose_config(self, change: ConfigChange) -> tuple[int, int]: ...

    async def wait_applied(self, index: int, timeout: float = 5.0) -> None: ...

    def term_at(self, index: int) -> int:
        """The term of the entry at `index`, 0 when it is not (or no longer) in the log."""
        ...

    def committed_entries(self, start: int, limit: int) -> tuple[int, int, list[Entry]]:
        """(first index of the log, commit index, up to `limit` committed entries from `start`)."""
        ...


class ChannelSource(Protocol):
    def channel(self, address: str) -> grpc.aio.Channel: ...


class LocalNode(Protocol):
    """This node: its id, the members' addresses, the leader, its alarms and status."""

    @property
    def id(self) -> str: ...

    @property
    def addresses(self) -> Mapping[str, str]: ...

    @property
    def forwarder(self) -> ChannelSource: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def alarms(self) -> list[str]: ...

    def leader_address(self) -> str: ...

    async def leader_settled(self, timeout: float) -> None:
        """Return once this node leads with no transfer under way or knows the leader, or after
        `timeout` seconds (a transfer or an election in progress settles in milliseconds)."""
        ...

    def local_status(self) -> admin_pb2.NodeStatus: ...


class SnapshotDirectory(Protocol):
    @property
    def directory(self) -> Path: ...


class Backups(Protocol):
    """Snapshots for backups, and the digests of the corruption check."""

    @property
    def snapshots(self) -> SnapshotDirectory: ...

    async def make_snapshot(self) -> tuple[SnapshotMeta, Snapshot]: ...

    def cluster_id(self) -> str: ...

    def local_hash(self, check_id: int) -> tuple[int, bytes] | None:
        """(check index, digest) of corruption check `check_id`, once hashed."""
        ...

    def hashing_at(self, check_id: int) -> int | None:
        """The index of corruption check `check_id` while this node is still hashing it, else None."""
        ...

    def backup_finished(self, *, completed: bool) -> None:
        """A backup this node streamed ended: every byte sent, or not (for the backup metrics)."""
        ...


class Kickable(Protocol):
    def kick(self) -> None: ...


class RefusalCounts(Protocol):
    @property
    def counts(self) -> Mapping[Any, int]: ...

    def add(self, refusal: Any) -> bool: ...


class Counted(Protocol):
    @property
    def counts(self) -> Mapping[Any, int]: ...


class CorruptionChecks(Protocol):
    @property
    def checks(self) -> Mapping[str, int]: ...


class LeaderScheduling(Protocol):
    """The leader-only scheduler (raftsched.scheduler) as the servicers and the metrics use it."""

    @property
    def running(self) -> bool: ...

    @property
    def refusals(self) -> RefusalCounts: ...

    @property
    def schedules(self) -> Kickable: ...

    @property
    def sessions(self) -> Sized: ...

    @property
    def corruption(self) -> CorruptionChecks: ...

    @property
    def loop_errors(self) -> dict[str, int]:
        """Failures of each leader loop (raftsched_leader_loop_errors_total)."""
        ...

    async def serve(self, context: Any, first: executor_pb2.ExecutorMessage) -> None: ...

    def executor_view(self) -> list[jobs_pb2.ExecutorInfo]: ...

    def waiting_reason(self, job_id: str) -> str:
        """Why a queued job waits beyond what its record says (the retry budget), or ""."""
        ...

    def retries_waiting(self) -> int:
        """Retries the last dispatch round left waiting for a retry-budget token."""
        ...


class DriverGauges(Protocol):
    """The driver's levels and counters read at scrape time."""

    applied_index: int
    bytes_since_compaction: int
    max_pending_proposals: int
    last_leader_contact: float  # time.monotonic() when a leader was last heard from

    @property
    def counters(self) -> DriverCounters: ...

    @property
    def pending_proposals(self) -> int: ...

    def status(self) -> Status: ...

    def refused_counts(self) -> dict[Reason, int]: ...



class StallWatch(Protocol):
    def longest_since(self, since: float) -> float: ...


class MemoryReport(Protocol):
    def memory_bytes(self) -> dict[str, int]: ...


class MetricsSource(Protocol):
    """What raftsched.metrics reads of a node (read at scrape time, so the parts may be made later)."""

    @property
    def id(self) -> str: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def driver(self) -> DriverGauges: ...

    @property
    def sm(self) -> StateReader: ...

    @property
    def scheduler(self) -> LeaderScheduling: ...

    @property
    def loop_watch(self) -> StallWatch: ...

    @property
    def db(self) -> MemoryReport: ...

    @property
    def request_refusals(self) -> Counted:
        """Request bodies refused before any servicer ran, by (method, reason) (raftsched.api.frames)."""
        ...

    @property
    def loop_failures(self) -> Mapping[str, int]:
        """Background loops and tasks that raised, by name (raftsched.tasks)."""
        ...

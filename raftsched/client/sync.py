"""The synchronous client: one lazily created channel per node, leader following, retries."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

import grpc

from raftsched.client import calls
from raftsched.client.base import ClientBase
from raftsched.client.calls import TERMINAL_STATES, Call
from raftsched.client.channels import CHANNEL_OPTIONS, credentials
from raftsched.client.errors import OUTCOME_METADATA_KEY, ClientError, error_for
from raftsched.client.routing import CallState, leader_hint
from raftsched.config import TLSConfig
from raftsched.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    jobs_pb2,
    notify_pb2,
    scheduler_pb2,
    scheduler_pb2_grpc,
)

R = TypeVar("R")
# The generated stubs are untyped; the Call values carry the types instead.
STUBS: dict[str, Any] = {"scheduler": scheduler_pb2_grpc.SchedulerStub, "admin": admin_pb2_grpc.AdminStub}
SNAPSHOT_CHUNK_LIMIT = 1 << 20  # the server's chunks are bounded; this only sizes the write buffer


def rpc_error_parts(error: grpc.RpcError) -> tuple[str, str, str | None, bool]:
    """(code name, details, leader hint, outcome unknown) of a failed call; a cut connection reads
    as UNAVAILABLE."""
    call = cast(Any, error)
    try:
        code = call.code()
        details = call.details() or ""
        metadata = call.trailing_metadata()
    except AttributeError:  # an RpcError that is not a Call (should not happen with real channels)
        return "UNKNOWN", str(error), None, False
    unknown = any(k == OUTCOME_METADATA_KEY and v in ("unknown", b"unknown") for k, v in metadata or ())
    return (code.name if code is not None else "UNKNOWN"), details, leader_hint(metadata), unknown


def stream_error(error: grpc.RpcError) -> ClientError:
    """The typed error for a server stream cut after its first message."""
    code, details, hint, unknown = rpc_error_parts(error)
    return error_for(code, details, hint=hint, outcome_unknown=unknown)


class Client(ClientBase):
    """Calls any node of the cluster; follows leader hints; retries what is safe to retry.

    Every method raises ClientError(code, message) on failure, typed by what it says about the
    outcome (raftsched.client.errors: NotLeaderError, UnavailableError, OutcomeUnknownError).
    `timeout` bounds each call as a whole, retries included.
    """

    def __init__(self, addresses: Sequence[str], *, timeout: float = 10.0, tls: TLSConfig | None = None,
                 attempt_timeout: float | None = None, token: str = "") -> None:
        super().__init__(addresses, timeout=timeout, tls=tls, attempt_timeout=attempt_timeout, token=token)
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()  # channels may be created from several threads

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
            self._stubs.clear()
        for channel in channels:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the machinery ----------------------------------------------------------------------

    def _channel(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = (grpc.secure_channel(address, credentials(self._tls, self._token), options=CHANNEL_OPTIONS)
                           if self._tls else grpc.insecure_channel(address, options=CHANNEL_OPTIONS))
                self._channels[address] = channel
            return channel

    def _method(self, call: Call[Any], address: str) -> Any:
        stub = self._stubs.get((call.service, address))
        if stub is None:  # a stub makes a callable for each method of its service: make it once
            channel = self._channel(address)
            with self._lock:
                stub = self._stubs.setdefault((call.service, address), STUBS[call.service](channel))
        return getattr(stub, call.method)

    def _unary(self, call: Call[R], timeout: float | None = None) -> R:
        state = self._plan(call, timeout)
        while True:
            method = self._method(call, state.target())
            try:
                response, attempt = method.with_call(call.request, timeout=state.timeout())
            except grpc.RpcError as e:
                time.sleep(state.failed(*rpc_error_parts(e)))
                continue
            state.succeeded(leader_hint(attempt.trailing_metadata()))
            return cast(R, response)

    def _open_stream(self, call: Call[Any], state: CallState) -> tuple[Any, Any]:
        """Open a server stream, retrying until its first message (None: it ended at once)."""
        while True:
            method = self._method(call, state.target())
            remaining = state.timeout()
            stream = method(call.request, timeout=None if math.isinf(remaining) else remaining)
            try:
                first = next(stream)
            except StopIteration:
                state.succeeded()
                return stream, None
            except grpc.RpcError as e:
                time.sleep(state.failed(*rpc_error_parts(e)))
                continue
            state.succeeded()
            return stream, first

    def _stream(self, call: Call[R], timeout: float | None) -> Iterator[R]:
        state = self._plan(call, math.inf if timeout is None else timeout, capped=False)
        stream, first = self._open_stream(call, state)
        if first is None:
            return
        try:
            yield first
            yield from stream
        except grpc.RpcError as e:
            raise stream_error(e) from None
        finally:
            stream.cancel()  # a consumer that stops early must not leave the call open

    # --- Scheduler ----------------------------------------------------------------------------

    def submit_job(self, spec: jobs_pb2.JobSpec, *, timeout: float | None = None,
                   ) -> scheduler_pb2.SubmitJobResponse:
        """Submit one job; a spec without idempotency_key gets a fresh one for its retries."""
        return self._unary(calls.submit_job(spec), timeout)

    def submit_jobs(self, specs: Iterable[jobs_pb2.JobSpec], *, timeout: float | None = None,
                    ) -> scheduler_pb2.SubmitJobsResponse:
        return self._unary(calls.submit_jobs(specs), timeout)

    def get_job(self, job_id: str, stale: bool = False, *, timeout: float | None = None) -> jobs_pb2.Job:
        return self._unary(calls.get_job(job_id, stale), timeout)

    def list_jobs(self, state: int = jobs_pb2.JOB_STATE_UNSPECIFIED, schedule: str = "", page_size: int = 0,
                  page_token: str = "", stale: bool = False, *, where: calls.JobFilter | None = None,
                  timeout: float | None = None) -> scheduler_pb2.ListJobsResponse:
        return self._unary(calls.list_jobs(state, schedule, page_size, page_token, stale, where), timeout)

    def iter_jobs(self, state: int = jobs_pb2.JOB_STATE_UNSPECIFIED, schedule: str = "", page_size: int = 0,
                  stale: bool = False, *, where: calls.JobFilter | None = None,
                  limit: int | None = None) -> Iterator[jobs_pb2.Job]:
        """Every matching job (at most `limit`), fetching page after page."""
        token, left = "", math.inf if limit is None else limit
        while left > 0:
            page = self.list_jobs(state, schedule, page_size, token, stale, where=where)
            for job in page.jobs[: int(min(left, len(page.jobs)))]:
                yield job
                left -= 1
            token = page.next_page_token
            if not token:
                return

    def cancel_job(self, job_id: str, reason: str = "", *, timeout: float | None = None) -> jobs_pb2.Job:
        return self._unary(calls.cancel_job(job_id, reason), timeout)

    def watch_job(self, job_id: str, *, timeout: float | None = None) -> Iterator[jobs_pb2.Job]:
        """The job's current state, then each change, until a terminal state.

        A stream cut by a node failure is reopened elsewhere; the server sends the current state
        first, so nothing is missed (a state may repeat).
        """
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            try:
                for job in self._stream(calls.watch_job(job_id), deadline - time.monotonic()):
                    yield job
                    if job.state in TERMINAL_STATES:
                        return
                return
            except ClientError as e:
                if not e.retryable or time.monotonic() >= deadline:
                    raise

    def check_fence(self, job_id: str, attempt: int, *, timeout: float | None = None,
                    ) -> scheduler_pb2.CheckFenceResponse:
        return self._unary(calls.check_fence(job_id, attempt), timeout)

    def list_executors(self, stale: bool = False, *, timeout: float | None = None,
                       ) -> scheduler_pb2.ListExecutorsResponse:
        return self._unary(calls.list_executors(stale), timeout)

    def drain_executor(self, executor_id: str, *, timeout: float | None = None) -> jobs_pb2.ExecutorInfo:
        return self._unary(calls.drain_executor(executor_id), timeout)

    def release_executor(self, executor_id: str, *, timeout: float | None = None) -> jobs_pb2.ExecutorInfo:
        """End an executor's quarantine before its cool-off is over."""
        return self._unary(calls.release_executor(executor_id), timeout)

    def create_schedule(self, spec: scheduler_pb2.ScheduleSpec, *, timeout: float | None = None,
                        ) -> scheduler_pb2.Schedule:
        return self._unary(calls.create_schedule(spec), timeout)

    def list_schedules(self, stale: bool = False, *, timeout: float | None = None,
                       ) -> scheduler_pb2.ListSchedulesResponse:
        return self._unary(calls.list_schedules(stale), timeout)

    def get_schedule(self, name: str, stale: bool = False, *, timeout: float | None = None,
                     ) -> scheduler_pb2.Schedule:
        return self._unary(calls.get_schedule(name, stale), timeout)

    def pause_schedule(self, name: str, note: str = "", *, timeout: float | None = None,
                       ) -> scheduler_pb2.Schedule:
        return self._unary(calls.pause_schedule(name, note), timeout)

    def resume_schedule(self, name: str, *, timeout: float | None = None) -> scheduler_pb2.Schedule:
        return self._unary(calls.resume_schedule(name), timeout)

    def trigger_schedule(self, name: str, *, timeout: float | None = None) -> jobs_pb2.Job:
        return self._unary(calls.trigger_schedule(name), timeout)

    def delete_schedule(self, name: str, *, timeout: float | None = None,
                        ) -> scheduler_pb2.DeleteScheduleResponse:
        return self._unary(calls.delete_schedule(name), timeout)

    # --- Admin -------------------------------------------------------------------------------

    def status(self, local_only: bool = False, *, timeout: float | None = None) -> admin_pb2.StatusResponse:
        return self._unary(calls.status(local_only), timeout)

    def list_alarms(self, stale: bool = False, *, timeout: float | None = None) -> admin_pb2.ListAlarmsResponse:
        return self._unary(calls.list_alarms(stale), timeout)

    def list_members(self, *, timeout: float | None = None) -> admin_pb2.ListMembersResponse:
        return self._unary(calls.list_members(), timeout)

    def add_member(self, member_id: str, address: str, learner: bool = False, *,
                   timeout: float | None = None) -> admin_pb2.ListMembersResponse:
        return self._unary(calls.add_member(member_id, address, learner), timeout)

    def promote_member(self, member_id: str, *, timeout: float | None = None,
                       ) -> admin_pb2.ListMembersResponse:
        return self._unary(calls.promote_member(member_id), timeout)

    def remove_member(self, member_id: str, *, timeout: float | None = None) -> admin_pb2.ListMembersResponse:
        return self._unary(calls.remove_member(member_id), timeout)

    def transfer_leader(self, target: str = "", *, timeout: float | None = None,
                        ) -> admin_pb2.TransferLeaderResponse:
        return self._unary(calls.transfer_leader(target), timeout)

    def read_log(self, from_index: int = 0, limit: int = 0, *, timeout: float | None = None,
                 ) -> admin_pb2.ReadLogResponse:
        return self._unary(calls.read_log(from_index, limit), timeout)

    def add_notify_sink(self, name: str, url: str, secret: bytes = b"", events: Iterable[str] = (), *,
                        timeout: float | None = None) -> notify_pb2.NotifySink:
        return self._unary(calls.add_notify_sink(name, url, secret, events), timeout)

    def list_notify_sinks(self, stale: bool = False, *, timeout: float | None = None,
                          ) -> admin_pb2.ListNotifySinksResponse:
        return self._unary(calls.list_notify_sinks(stale), timeout)

    def remove_notify_sink(self, name: str, *, timeout: float | None = None) -> admin_pb2.RemoveNotifySinkResponse:
        return self._unary(calls.remove_notify_sink(name), timeout)

    def test_notify_sink(self, name: str, *, timeout: float | None = None) -> admin_pb2.TestNotifySinkResponse:
        return self._unary(calls.test_notify_sink(name), timeout)

    def save_snapshot(self, path: str, *, timeout: float | None = None,
                      progress: Callable[[int], None] | None = None) -> int:
        """Stream a snapshot of the leader's state into path; returns its size in bytes.
        `progress`, when given, gets the bytes received so far after each chunk.

        Written to path + '.partial' and renamed at the end, so path never holds a torn backup.
        A transfer cut part way starts again from the beginning.
        """
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        partial = path + ".partial"
        while True:
            try:
                size = self._download(partial, deadline - time.monotonic(), progress)
            except ClientError as e:
                if not e.retryable or time.monotonic() >= deadline:
                    remove_quietly(partial)
                    raise
                continue
            os.replace(partial, path)
            return size

    def _download(self, partial: str, timeout: float, progress: Callable[[int], None] | None) -> int:
        size = 0
        with open(partial, "wb", buffering=SNAPSHOT_CHUNK_LIMIT) as f:
            for chunk in self._stream(calls.save_snapshot(), timeout):
                f.write(chunk.data)
                size += len(chunk.data)
                if progress is not None:
                    progress(size)
            f.flush()
            os.fsync(f.fileno())
        return size


def remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)

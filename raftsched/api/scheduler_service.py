"""The client API (SPEC §4 Scheduler). Any node accepts any call: a follower forwards to the leader;
the leader validates, proposes and answers once the command is applied. Reads are linearizable
(ReadIndex on the leader) unless the request asks for a stale read from the local node.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import grpc

from raftsched.api.errors import ApiError, NotFoundError, code_from_int, guarded, outcome_unknown, request_id, status_of
from raftsched.api.forward import call_leader, was_forwarded
from raftsched.api.submit_batcher import SubmitBatcher
from raftsched.clock import now_ms
from raftsched.jobstates import TERMINAL
from raftsched.logs import REQUEST_ID
from raftsched.quoting import quote
from raftsched.seams import LeaderScheduling, LocalNode, Proposer, StateReader
from raftsched.state import commands as cmds
from raftsched.state import firetimes
from raftsched.state.listing import query_from_request
from raftsched.state.schedules import decided_until, validate_schedule
from raftsched.state.validate import ValidationError, validate_spec
from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
MAX_BATCH = 1000  # specs per SubmitJobs request
STREAM_IN_FLIGHT = 1024  # unanswered submits one SubmitJobStream may hold; beyond, RESOURCE_EXHAUSTED
FORWARD_TIMEOUT_S = 10.0  # one forwarded stream submit
LEADER_WAIT_S = 0.2  # how long a node that knows no leader waits for one before answering UNAVAILABLE
WATCH_QUEUE = 256


class SchedulerService(scheduler_pb2_grpc.SchedulerServicer):
    def __init__(self, *, node: LocalNode, proposer: Proposer, state: StateReader,
                 scheduler: LeaderScheduling) -> None:
        self.node = node
        self.proposer = proposer
        self.state = state
        self.scheduler = scheduler
        self.batcher = SubmitBatcher(proposer)

    # --- routing helpers ---

    async def _leader_or_forward(self, method: str, request: Any, context: Context) -> Any | None:
        """None when this node leads (serve here); otherwise the leader's answer."""
        if self.node.is_leader:
            return None
        if not self.node.leader_address():
            # Just stepped down (a transfer) or an election under way: the leader is usually
            # known within milliseconds; a short wait beats sending the client into a backoff.
            await self.node.leader_settled(LEADER_WAIT_S)
            if self.node.is_leader:
                return None
        if was_forwarded(context):
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "forwarded to a node that is no longer the leader; retry")
        remaining = context.time_remaining()
        timeout = min(remaining, 30.0) if remaining is not None else 10.0
        return await call_leader(self.node.forwarder, self.node.leader_address(), scheduler_pb2_grpc.SchedulerStub,
                                 method, request, timeout, context)

    async def _read(self, method: str, request: Any, context: Context, stale: bool) -> Any | None:
        """For a read: None when it may be served from local state now, else the leader's answer."""
        if stale:
            self._check_serving()
            return None
        answer = await self._leader_or_forward(method, request, context)
        if answer is None:
            self._check_serving()
            await self.proposer.read_barrier()
        return answer

    def _check_serving(self) -> None:
        """A node whose stored state is under an alarm answers no read from it (promise 15)."""
        alarms = self.node.alarms
        if alarms:
            raise ApiError(grpc.StatusCode.UNAVAILABLE,
                           f"this node's state is {', '.join(alarms)}: it serves no reads until it is rebuilt "
                           "(raftsched node --rebuild-from-peers); ask another node")

    # --- jobs ---

    @guarded
    async def SubmitJob(self, request: scheduler_pb2.SubmitJobRequest, context: Context) -> Any:
        forwarded = await self._leader_or_forward("SubmitJob", request, context)
        if forwarded is not None:
            return forwarded
        self._validate(request.spec)
        existing = self.state.job_by_key(request.spec.idempotency_key) if request.spec.idempotency_key else None
        if existing is not None:
            return scheduler_pb2.SubmitJobResponse(job=existing, existed=True)
        result = await self.proposer.propose(cmds.submit(request.spec))
        item = result.submitted[0] if result.submitted else None
        if item is None or item.error:
            raise ApiError(code_from_int(item.code if item else 13), item.error if item else "submit refused")
        return scheduler_pb2.SubmitJobResponse(job=item.job, existed=item.existed)

    @guarded
    async def SubmitJobs(self, request: scheduler_pb2.SubmitJobsRequest, context: Context) -> Any:
        """Each spec is checked on its own (a bad one gets its error, the rest go on). The valid
        ones are proposed in as few entries as MAX_ENTRY_BYTES allows, in order; a batch split in
        several entries is not atomic: a failure after the first leaves the earlier ones applied
        (retry with the same idempotency keys)."""
        if len(request.specs) > MAX_BATCH:
            raise ValidationError("specs", f"at most {MAX_BATCH} jobs per request, got {len(request.specs)}")
        forwarded = await self._leader_or_forward("SubmitJobs", request, context)
        if forwarded is not None:
            return forwarded
        results: list[scheduler_pb2.SubmitResult | None] = [None] * len(request.specs)
        valid: list[int] = []
        for i, spec in enumerate(request.specs):
            try:
                self._validate(spec)
                valid.append(i)
            except ValidationError as err:
                results[i] = scheduler_pb2.SubmitResult(error=str(err), code=grpc.StatusCode.INVALID_ARGUMENT.value[0])
        groups = cmds.split_by_size([request.specs[i].ByteSize() for i in valid])
        for group in ([valid[k] for k in g] for g in groups):
            applied = await self.proposer.propose(cmds.submit(*(request.specs[i] for i in group)))
            for i, item in zip(group, applied.submitted, strict=True):
                results[i] = item
        return scheduler_pb2.SubmitJobsResponse(results=[r for r in results if r is not None])

    async def SubmitJobStream(self, requests: AsyncIterator[scheduler_pb2.SubmitJobRequest],
                              context: Context) -> AsyncIterator[scheduler_pb2.SubmitJobStreamResponse]:
        """Answers in completion order, each with its request's request_id. On the leader, valid
        submits from every stream go into shared entries (SubmitBatcher); a follower forwards
        each one to the leader as a SubmitJob."""
        REQUEST_ID.set(request_id(context))
        answers: asyncio.Queue[scheduler_pb2.SubmitJobStreamResponse | None] = asyncio.Queue()
        open_submits = 0
        read_all = False

        def answer(msg: scheduler_pb2.SubmitJobStreamResponse) -> None:
            nonlocal open_submits
            open_submits -= 1
            answers.put_nowait(msg)
            if read_all and not open_submits:
                answers.put_nowait(None)

        async def read() -> None:
            nonlocal open_submits, read_all
            async for request in requests:
                open_submits += 1
                if open_submits > STREAM_IN_FLIGHT:
                    answer(self._stream_error(request.request_id, ApiError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"over {STREAM_IN_FLIGHT} submits unanswered on this stream; wait for answers")))
                else:
                    self._stream_submit(request, answer)
            read_all = True
            if not open_submits:
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        # A read that fails (the stream broke) ends the answers too; `await reader` raises it.
        reader.add_done_callback(lambda t: None if t.cancelled() or t.exception() is None else answers.put_nowait(None))
        try:
            while (msg := await answers.get()) is not None:
                yield msg
            await reader
        finally:
            reader.cancel()

    def _stream_submit(self, request: scheduler_pb2.SubmitJobRequest,
                       answer: Callable[[scheduler_pb2.SubmitJobStreamResponse], None]) -> None:
        rid = request.request_id
        if not self.node.is_leader:
            task = asyncio.ensure_future(self._forward_one(request))
            task.add_done_callback(lambda t: None if t.cancelled() else answer(t.result()))
            return
        try:
            self._validate(request.spec)
            key = request.spec.idempotency_key
            existing = self.state.job_by_key(key) if key else None
        except Exception as err:
            answer(self._stream_error(rid, err))
            return
        if existing is not None:
            answer(scheduler_pb2.SubmitJobStreamResponse(request_id=rid, job=existing, existed=True))
            return

        def done(future: asyncio.Future[scheduler_pb2.SubmitResult]) -> None:
            err = future.exception()
            if err is not None:
                answer(self._stream_error(rid, err))
                return
            item = future.result()
            answer(scheduler_pb2.SubmitJobStreamResponse(request_id=rid, job=item.job, existed=item.existed,
                                                         code=item.code, error=item.error))

        self.batcher.submit(request.spec).add_done_callback(done)

    async def _forward_one(self, request: scheduler_pb2.SubmitJobRequest) -> scheduler_pb2.SubmitJobStreamResponse:
        try:
            self._validate(request.spec)
            reply = await call_leader(self.node.forwarder, self.node.leader_address(),
                                      scheduler_pb2_grpc.SchedulerStub, "SubmitJob",
                                      scheduler_pb2.SubmitJobRequest(spec=request.spec), FORWARD_TIMEOUT_S)
        except Exception as err:
            return self._stream_error(request.request_id, err)
        assert isinstance(reply, scheduler_pb2.SubmitJobResponse)
        return scheduler_pb2.SubmitJobStreamResponse(request_id=request.request_id, job=reply.job,
                                                     existed=reply.existed, leader=self.node.leader_address())

    def _stream_error(self, rid: str, err: BaseException) -> scheduler_pb2.SubmitJobStreamResponse:
        code, message = status_of(err)
        leader = self.node.leader_address() if code == grpc.StatusCode.UNAVAILABLE else ""
        return scheduler_pb2.SubmitJobStreamResponse(request_id=rid, code=code.value[0], error=message,
                                                     leader=leader, outcome_unknown=outcome_unknown(err))

    def _validate(self, spec: jobs_pb2.JobSpec) -> None:
        validate_spec(spec, self.state.known_handlers())
        _check_entry_size("spec", spec)
        for i, dep in enumerate(spec.depends_on):
            if self.state.get_job(dep) is None:
                raise ValidationError(f"depends_on[{i}]", f"unknown job id {quote(dep)}")

    @guarded
    async def GetJob(self, request: scheduler_pb2.GetJobRequest, context: Context) -> Any:
        forwarded = await self._read("GetJob", request, context, request.stale)
        if forwarded is not None:
            return forwarded
        job = self.state.get_job(request.id)
        if job is None:
            raise NotFoundError(f"no job with id {quote(request.id)}")
        waiting = self.scheduler.waiting_reason(job.id) if self.scheduler.running else ""
        if waiting and job.state == jobs_pb2.JOB_STATE_QUEUED:
            job.state_reason = f"{job.state_reason}; {waiting}" if job.state_reason else waiting
        return job

    @guarded
    async def ListJobs(self, request: scheduler_pb2.ListJobsRequest, context: Context) -> Any:
        query = query_from_request(request)
        forwarded = await self._read("ListJobs", request, context, request.stale)
        if forwarded is not None:
            return forwarded
        jobs, token = self.state.list_jobs(query)
        return scheduler_pb2.ListJobsResponse(jobs=jobs, next_page_token=token)

    @guarded
    async def CancelJob(self, request: scheduler_pb2.CancelJobRequest, context: Context) -> Any:
        forwarded = await self._leader_or_forward("CancelJob", request, context)
        if forwarded is not None:
            return forwarded
        if self.state.get_job(request.id) is None:
            raise NotFoundError(f"no job with id {quote(request.id)}")
        result = await self.proposer.propose(cmds.cancel(request.id, request.reason))
        if result.error:
            raise ApiError(code_from_int(result.code), result.error)
        return result.job

    async def WatchJob(self, request: scheduler_pb2.WatchJobRequest, context: Context) -> AsyncIterator[jobs_pb2.Job]:
        queue: asyncio.Queue[jobs_pb2.Job] = asyncio.Queue(WATCH_QUEUE)

        def on_change(job: jobs_pb2.Job) -> None:
            if job.id == request.id:
                if queue.full():
                    queue.get_nowait()  # a slow watcher skips intermediate states, never the last
                queue.put_nowait(job)

        self.state.add_listener(on_change)
        try:
            try:
                current = await self.GetJob(scheduler_pb2.GetJobRequest(id=request.id), context)
            except grpc.aio.AbortError:
                return
            yield current
            state = current.state
            while state not in TERMINAL:
                job = await queue.get()
                if job.state != state or job.updated_ms != current.updated_ms:
                    current, state = job, job.state
                    yield job
        finally:
            self.state.remove_listener(on_change)

    @guarded
    async def CheckFence(self, request: scheduler_pb2.CheckFenceRequest, context: Context) -> Any:
        forwarded = await self._read("CheckFence", request, context, stale=False)
        if forwarded is not None:
            return forwarded
        if self.state.get_job(request.job_id) is None:
            raise NotFoundError(f"no job with id {quote(request.job_id)}")
        return self.state.check_fence(request.job_id, request.attempt)

    # --- executors ---

    @guarded
    async def ListExecutors(self, request: scheduler_pb2.ListExecutorsRequest, context: Context) -> Any:
        forwarded = await self._read("ListExecutors", request, context, request.stale)
        if forwarded is not None:
            return forwarded
        return scheduler_pb2.ListExecutorsResponse(executors=self.scheduler.executor_view())

    @guarded
    async def DrainExecutor(self, request: scheduler_pb2.DrainExecutorRequest, context: Context) -> Any:
        forwarded = await self._leader_or_forward("DrainExecutor", request, context)
        if forwarded is not None:
            return forwarded
        if self.state.executor(request.id) is None:
            raise NotFoundError(f"no executor with id {quote(request.id)}")
        result = await self.proposer.propose(cmds.drain(request.id))
        if result.error:
            raise ApiError(code_from_int(result.code), result.error)
        views = [e for e in self.scheduler.executor_view() if e.id == request.id]
        return views[0] if views else jobs_pb2.ExecutorInfo(id=request.id)

    @guarded
    async def ReleaseExecutor(self, request: scheduler_pb2.ReleaseExecutorRequest, context: Context) -> Any:
        forwarded = await self._leader_or_forward("ReleaseExecutor", request, context)
        if forwarded is not None:
            return forwarded
        if self.state.executor(request.id) is None:
            raise NotFoundError(f"no executor with id {quote(request.id)}")
        result = await self.proposer.propose(cmds.release(request.id, "released by an operator"))
        if result.error:
            raise ApiError(code_from_int(result.code), result.error)
        views = [e for e in self.scheduler.executor_view() if e.id == request.id]
        return views[0] if views else jobs_pb2.ExecutorInfo(id=request.id)

    # --- schedules ---

    @guarded
    async def CreateSchedule(self, request: scheduler_pb2.CreateScheduleRequest, context: Context) -> Any:
        forwarded = await self._leader_or_forward("CreateSchedule", request, context)
        if forwarded is not None:
            return forwarded
        validate_schedule(request.spec, self.state.known_handlers())
        _check_entry_size("spec", request.spec)
        if self.state.schedule(request.spec.name) is not None:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"name: a schedule named {quote(request.spec.name)} exists")
        result = await self.proposer.propose(cmds.create_schedule(request.spec))
        return self._schedule_result(result)

    @guarded
    async def ListSchedules(self, request: scheduler_pb2.ListSchedulesRequest, context: Context) -> Any:
        forwarded = await self._read("ListSchedules", request, context, request.stale)
        if forwarded is not None:
            return forwarded
        return scheduler_pb2.ListSchedulesResponse(schedules=[schedule_view(s) for s in self.state.schedules()])

    @guarded
    async def GetSchedule(self, request: scheduler_pb2.GetScheduleRequest, context: Context) -> Any:
        forwarded = await self._read("GetSchedule", request, context, request.stale)
        if forwarded is not None:
            return forwarded
        return schedule_view(self._existing_schedule(request.name))

    @guarded
    async def PauseSchedule(self, request: scheduler_pb2.PauseScheduleRequest, context: Context) -> Any:
        return await self._set_paused("PauseSchedule", request, context, paused=True, note=request.note)

    @guarded
    async def ResumeSchedule(self, request: scheduler_pb2.ResumeScheduleRequest, context: Context) -> Any:
        return await self._set_paused("ResumeSchedule", request, context, paused=False, note="")

    async def _set_paused(self, method: str, request: Any, context: Context, *, paused: bool, note: str) -> Any:
        forwarded = await self._leader_or_forward(method, request, context)
        if forwarded is not None:
            return forwarded
        self._existing_schedule(request.name)
        cmd = cmds.pause_schedule(request.name, paused=paused, note=note)
        return self._schedule_result(await self.proposer.propose(cmd))

    @guarded
    async def TriggerSchedule(self, request: scheduler_pb2.TriggerScheduleRequest, context: Context) -> Any:
        """Fire once now, whatever the schedule's state; recorded as a manual firing."""
        forwarded = await self._leader_or_forward("TriggerSchedule", request, context)
        if forwarded is not None:
            return forwarded
        self._existing_schedule(request.name)
        result = await self.proposer.propose(cmds.fire_schedule(request.name, now_ms(), manual=True))
        if result.error or not result.job.id:
            raise ApiError(code_from_int(result.code or 13), result.error or "the trigger created no job")
        return result.job

    @guarded
    async def DeleteSchedule(self, request: scheduler_pb2.DeleteScheduleRequest, context: Context) -> Any:
        forwarded = await self._leader_or_forward("DeleteSchedule", request, context)
        if forwarded is not None:
            return forwarded
        self._existing_schedule(request.name)
        cmd = cmds.delete_schedule(request.name)
        result = await self.proposer.propose(cmd)
        if result.error:
            raise ApiError(code_from_int(result.code), result.error)
        return scheduler_pb2.DeleteScheduleResponse()

    def _existing_schedule(self, name: str) -> scheduler_pb2.Schedule:
        schedule = self.state.schedule(name)
        if schedule is None:
            raise NotFoundError(f"no schedule named {quote(name)}")
        return schedule

    def _schedule_result(self, result: commands_pb2.ApplyResult) -> scheduler_pb2.Schedule:
        if result.error:
            raise ApiError(code_from_int(result.code), result.error)
        self.scheduler.schedules.kick()
        return schedule_view(result.schedule)


def _check_entry_size(name: str, spec: Any) -> None:
    """Refuse what alone would make a Raft entry over MAX_ENTRY_BYTES (a long argv can: 1,024
    arguments of 8 KiB each pass every field limit)."""
    size = cmds.ENTRY_OVERHEAD_BYTES + spec.ByteSize()
    if size > cmds.MAX_ENTRY_BYTES:
        raise ValidationError(name, f"{size} bytes encoded, over the limit of {cmds.MAX_ENTRY_BYTES >> 20} MiB "
                              "for one job or schedule (one Raft entry)")


def schedule_view(schedule: scheduler_pb2.Schedule, count: int = 5) -> scheduler_pb2.Schedule:
    """The record plus its next `count` fire times, computed on read from this node's clock."""
    after = max(decided_until(schedule), now_ms())
    del schedule.next_fire_times[:]
    schedule.next_fire_times.extend(firetimes.next_times(schedule.spec, after, count))
    return schedule

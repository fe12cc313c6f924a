"""Run one attempt to its end: a subprocess (spec.command) or an in-process handler (spec.handler).

A command runs in its own session, so its process group holds it and everything it forks; killing
the attempt signals the whole group: SIGTERM, then SIGKILL after the kill grace. When the main
process exits, whatever it left behind in the group is SIGKILLed at once, because a leftover process
would keep working for an attempt the cluster already considers finished (SPEC §6 promise 9).

Every way an attempt can end goes through `kill(end, error)` or the natural exit; the first reason
recorded wins, so a timeout racing a cancel reports whichever came first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import NamedTuple

from raftsched.executor.guard import TaskGuard
from raftsched.executor.handlers import HandlerRegistry, OutputTail, TaskContext
from raftsched.v1 import executor_pb2 as epb
from raftsched.v1 import jobs_pb2 as jpb

log = logging.getLogger("raftsched.executor")

READ_CHUNK = 64 * 1024
EXIT_CANNOT_START = 127  # what a shell reports for a command it cannot run
EXIT_HANDLER_FAILED = 1
EXIT_NO_CODE = -1  # an in-process handler that was stopped has no exit code


class AttemptKey(NamedTuple):
    job_id: str
    attempt: int

    @property
    def token(self) -> str:
        """The fencing token handed to the task."""
        return f"{self.job_id}:{self.attempt}"

    def ref(self) -> jpb.AttemptRef:
        return jpb.AttemptRef(job_id=self.job_id, attempt=self.attempt)


def finished(
    key: AttemptKey, end: jpb.AttemptEnd, *, exit_code: int = 0, error: str = "", tail: bytes = b""
) -> epb.TaskFinished:
    return epb.TaskFinished(
        job_id=key.job_id, attempt=key.attempt, end=end, exit_code=exit_code, error=error, output_tail=tail
    )


def task_env(key: AttemptKey, executor_id: str) -> dict[str, str]:
    """The executor's environment plus what the task needs to know about its attempt (SPEC §5)."""
    env = dict(os.environ)
    env.update(
        RAFTSCHED_JOB_ID=key.job_id, RAFTSCHED_ATTEMPT=str(key.attempt), RAFTSCHED_FENCING_TOKEN=key.token,
        RAFTSCHED_EXECUTOR_ID=executor_id,
    )
    return env


class AttemptRunner:
    """One attempt. `run()` once; `kill()` any time, from the same event loop."""

    def __init__(
        self,
        key: AttemptKey,
        spec: jpb.JobSpec,
        *,
        handlers: HandlerRegistry,
        tail_bytes: int,
        kill_grace_s: float,
        on_started: Callable[[], None] = lambda: None,
        lease_remaining: Callable[[], float] | None = None,
        executor_id: str = "",
    ) -> None:
        """`lease_remaining` (seconds of lease left) turns on a guard process for commands;
        `executor_id` is handed to the task (RAFTSCHED_EXECUTOR_ID, `TaskContext.executor_id`)."""
        self.key = key
        self.executor_id = executor_id
        self._spec = spec
        self._handlers = handlers
        self._tail = OutputTail(tail_bytes)
        self._grace = kill_grace_s
        self._on_started = on_started
        self._killed: tuple[jpb.AttemptEnd, str] | None = None  # (end, error) of the first kill
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[object] | None = None
        self._kill_requested = asyncio.Event()
        self._timers: list[asyncio.TimerHandle] = []
        self._done = False
        self._lease_remaining = lease_remaining
        self._guard: TaskGuard | None = None

    @property
    def pid(self) -> int | None:
        """The command's pid (also its process group id), once spawned."""
        return self._proc.pid if self._proc else None

    @property
    def kill_reason(self) -> tuple[jpb.AttemptEnd, str] | None:
        return self._killed

    async def run(self) -> epb.TaskFinished:
        if self._spec.timeout_ms:
            self._timers.append(
                asyncio.get_running_loop().call_later(
                    self._spec.timeout_ms / 1000.0,
                    self.kill,
                    jpb.ATTEMPT_END_TIMED_OUT,
                    f"timed out after {self._spec.timeout_ms} ms",
                )
            )
        try:
            if self._spec.command:
                return await self._run_command(list(self._spec.command))
            if self._spec.handler:
                return await self._run_handler(self._spec.handler)
            error = "job spec has neither command nor handler"
            return self._result(jpb.ATTEMPT_END_FAILED, EXIT_CANNOT_START, error)
        finally:
            self._done = True
            for timer in self._timers:
                timer.cancel()

    def kill(self, end: jpb.AttemptEnd, error: str) -> None:
        """Stop the attempt; it will report `end` (unless an earlier kill already chose one)."""
        if self._done or self._killed is not None:
            return
        self._killed = (end, error)
        self._kill_requested.set()
        if self._proc is not None and self._proc.returncode is None:
            self._terminate_group()
        elif self._task is not None:
            self._task.cancel()

    def _result(self, end: jpb.AttemptEnd, exit_code: int, error: str) -> epb.TaskFinished:
        if self._killed is not None:
            end, error = self._killed
        return finished(self.key, end, exit_code=exit_code, error=error, tail=self._tail.getvalue())

    # -- commands ---------------------------------------------------------------------------

    async def _run_command(self, argv: list[str]) -> epb.TaskFinished:
        if self._killed is not None:  # killed before it could start: nothing to run
            return self._result(jpb.ATTEMPT_END_FAILED, EXIT_NO_CODE, "")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=task_env(self.key, self.executor_id),
                start_new_session=True,  # its own process group, so a kill reaches its children
            )
        except OSError as exc:
            return self._result(jpb.ATTEMPT_END_FAILED, EXIT_CANNOT_START, f"cannot start {argv[0]!r}: {exc}")
        self._proc = proc
        if self._killed is not None:  # a kill arrived while we were spawning
            self._terminate_group()
        try:
            # The guard comes up before `started` is reported; a freeze in the few ms between the
            # spawn and the guard is the one window the guard does not cover.
            await self._start_guard(proc.pid)
            self._on_started()
            rc = await self._supervise(proc)
        finally:
            if proc.returncode is None:  # we were cancelled ourselves: never leave the task behind
                self._signal_group(signal.SIGKILL)
            await self._release_guard()
        return self._command_result(rc)

    def renew_guard(self, remaining_s: float) -> None:
        """Pass a lease renewal on to the guard process, if this attempt has one."""
        if self._guard is not None:
            self._guard.renew(remaining_s)

    async def _start_guard(self, pgid: int) -> None:
        if self._lease_remaining is None or self._proc is None or self._proc.returncode is not None:
            return
        self._guard = await TaskGuard.start(pgid, remaining_s=self._lease_remaining(), grace_s=self._grace)

    async def _release_guard(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None and await guard.release() and self._killed is None:
            # The agent was frozen past its lease and the guard killed the task (promise 9).
            self._killed = (jpb.ATTEMPT_END_FENCED, "lease expired (killed by the task guard)")

    async def _supervise(self, proc: asyncio.subprocess.Process) -> int:
        assert proc.stdin is not None and proc.stdout is not None
        feeder = asyncio.create_task(self._feed_stdin(proc.stdin))
        reader = asyncio.create_task(self._read_output(proc.stdout))
        try:
            rc = await proc.wait()
            # Leftovers in the group would outlive the attempt; they also hold stdout open.
            self._signal_group(signal.SIGKILL)
            await asyncio.wait({reader}, timeout=max(self._grace, 0.1))
            return rc
        finally:
            for helper in (feeder, reader):
                helper.cancel()
            await asyncio.gather(feeder, reader, return_exceptions=True)

    async def _feed_stdin(self, stdin: asyncio.StreamWriter) -> None:
        try:
            if self._spec.payload:
                stdin.write(self._spec.payload)
                await stdin.drain()
            stdin.close()
            await stdin.wait_closed()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the task exited or closed stdin without reading its payload: its choice

    async def _read_output(self, stdout: asyncio.StreamReader) -> None:
        while chunk := await stdout.read(READ_CHUNK):
            self._tail.write(chunk)

    def _command_result(self, rc: int) -> epb.TaskFinished:
        if rc == 0:
            return self._result(jpb.ATTEMPT_END_SUCCEEDED, 0, "")
        if rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
            return self._result(jpb.ATTEMPT_END_FAILED, rc, f"killed by {name}")
        return self._result(jpb.ATTEMPT_END_FAILED, rc, f"exit code {rc}")

    def _terminate_group(self) -> None:
        self._signal_group(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(self._grace, self._signal_group, signal.SIGKILL))

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # the group is already gone
        else:
            log.debug("signalled job=%s attempt=%d pgid=%d sig=%s", *self.key, self._proc.pid, sig.name)

    # -- handlers ---------------------------------------------------------------------------

    async def _run_handler(self, name: str) -> epb.TaskFinished:
        fn = self._handlers.get(name)
        if fn is None:
            known = ", ".join(self._handlers.names())
            return self._result(
                jpb.ATTEMPT_END_FAILED, EXIT_HANDLER_FAILED, f"unknown handler {name!r} (registered: {known})"
            )
        if self._killed is not None:
            return self._result(jpb.ATTEMPT_END_FAILED, EXIT_NO_CODE, "")
        ctx = TaskContext(job_id=self.key.job_id, attempt=self.key.attempt, payload=self._spec.payload,
                          output=self._tail, executor_id=self.executor_id)
        task: asyncio.Task[object] = asyncio.create_task(fn(ctx))  # type: ignore[arg-type]
        self._task = task
        self._on_started()
        try:
            return await self._await_handler(task, name)
        finally:
            task.cancel()  # no-op when it finished; stops it when we were cancelled ourselves

    async def _await_handler(self, task: asyncio.Task[object], name: str) -> epb.TaskFinished:
        kill_wait = asyncio.create_task(self._kill_requested.wait())
        try:
            await asyncio.wait({task, kill_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                # Cancelled at its next await; one that ignores cancellation is abandoned after the grace.
                await asyncio.wait({task}, timeout=self._grace)
        finally:
            kill_wait.cancel()
        if not task.done():
            log.warning("handler ignored cancellation job=%s attempt=%d handler=%s", *self.key, name)
            return self._result(jpb.ATTEMPT_END_FAILED, EXIT_NO_CODE, "")
        if task.cancelled():
            return self._result(jpb.ATTEMPT_END_CANCELLED, EXIT_NO_CODE, "handler cancelled")
        exc = task.exception()
        if exc is not None:
            return self._result(jpb.ATTEMPT_END_FAILED, EXIT_HANDLER_FAILED, f"{type(exc).__name__}: {exc}")
        result = task.result()
        if isinstance(result, bytes | str):
            self._tail.write(result)
        elif result is not None:
            error = f"handler {name!r} returned {type(result).__name__}; expected bytes, str or None"
            return self._result(jpb.ATTEMPT_END_FAILED, EXIT_HANDLER_FAILED, error)
        return self._result(jpb.ATTEMPT_END_SUCCEEDED, 0, "")

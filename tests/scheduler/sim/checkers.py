"""Safety checks of the scheduling layer, applied as things happen (every apply, every task start
and kill) and after every step; separate from the code under test. Each failure is an
AssertionError naming what broke."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raftsched.jobstates import TERMINAL
from raftsched.state import commands as cmds
from raftsched.state import firetimes
from raftsched.state.schedules import decided_until
from raftsched.v1 import commands_pb2, executor_pb2, jobs_pb2

if TYPE_CHECKING:
    from .world import SimNode, World

Key = tuple[str, int]
LOST_CHECK_TICKS = 50  # every node's state is checked for acknowledged jobs this often


class Checker:
    def __init__(self, world: World) -> None:
        self.world = world
        self.alive: dict[str, set[tuple[str, int]]] = {}  # job -> {(executor, attempt)} whose process lives
        self.client: dict[tuple[str, int], int] = {}  # (node, index) -> term of a client submit
        self.acked: dict[str, int] = {}  # job id -> log index of its acknowledged submit
        self.fired: dict[tuple[str, int], set[str]] = {}  # (schedule, time) -> jobs created for it
        self.skipped: set[tuple[str, int]] = set()
        self.gentle = False  # only short disconnects: nothing may be killed
        self.kills = 0
        self.started = 0
        self.finished = 0
        self._skips: list[tuple[str, int]] = []  # recorded by the skip command being applied
        self._before: dict[str, tuple[Any, ...]] = {}  # job -> its record before a finished command applied
        self._last_jobs: dict[str, str] = {}  # schedule -> its last job before the command being applied

    # --- no two attempts of one job run at once (promises 4, 9) ---

    def task_started(self, executor: str, key: Key) -> None:
        self.started += 1
        running = self.alive.setdefault(key[0], set())
        running.add((executor, key[1]))
        attempts = {attempt for _, attempt in running}
        assert len(attempts) == 1, f"two attempts of job {key[0]} run at once: {sorted(running)}"

    def task_exited(self, executor: str, key: Key) -> None:
        running = self.alive.get(key[0], set())
        running.discard((executor, key[1]))
        if not running:
            self.alive.pop(key[0], None)

    def killed(self, executor: str, key: Key, why: str) -> None:
        self.kills += 1
        assert not self.gentle, f"a short disconnect killed {key} on {executor} ({why}) (promise 10)"

    def reported(self, executor: str, result: executor_pb2.TaskFinished) -> None:
        self.finished += 1

    def result_acked(self, node_id: str, executor: str, key: Key) -> None:
        """The leader acknowledged a result (the executor forgets it): it must be in the log and
        applied there already, or that attempt must no longer be the executor's to report."""
        node = self.world.nodes[node_id]
        if node.sm is None:
            return
        job = node.sm.get_job(key[0])
        assert job is None or not _is_current(job, key[1], executor), (
            f"{node_id} acknowledged the result of {key} from {executor} before recording it: {job.state_reason}")

    # --- a silent executor is not dead until the executor timeout (promise 10) ---

    def leader_proposed(self, node: SimNode, command: commands_pb2.Command) -> None:
        """A leader may declare an executor down only after the executor timeout of silence,
        counted from the last message it took from that executor and from its own election."""
        if not command.HasField("executor_down") or node.sched is None:
            return
        sched, executor = node.sched, command.executor_down.executor_id
        heard = max(sched.last_seen.get(executor, 0), sched.elected_at)
        silent = self.world.mono - heard
        timeout = self.world.timing.executor_timeout_ms
        assert silent >= timeout, (f"{node.id} declared {executor} down after {silent} ms of silence, "
                                   f"before the executor timeout of {timeout} ms (promise 10)")

    # --- acknowledged submits ---

    def client_proposed(self, node: str, index: int, term: int, command: commands_pb2.Command) -> None:
        self.client[(node, index)] = term

    # --- applies ---

    def before_apply(self, node: SimNode, data: bytes | None) -> None:
        self._skips, self._before = [], {}
        if data is None or node.sm is None:
            return
        self._last_jobs = node.sm.last_jobs()
        cmd = cmds.decode(data)
        if cmd.HasField("skip_fires"):
            schedule = node.sm.schedule(cmd.skip_fires.name)
            if schedule is not None:
                watermark = decided_until(schedule)
                self._skips = [(schedule.id, f.scheduled_time) for f in cmd.skip_fires.fires
                               if f.scheduled_time > watermark]
        elif cmd.HasField("finished"):
            current: set[str] = set()  # jobs one item of this command may change legitimately
            for item in cmd.finished.items:
                job = node.sm.get_job(item.job_id)
                if job is None:
                    continue
                if _is_current(job, item.attempt, cmd.finished.executor):
                    current.add(item.job_id)
                else:
                    self._before[item.job_id] = _fate(job)
            for job_id in current:
                self._before.pop(job_id, None)

    def after_apply(self, node: SimNode, index: int, data: bytes | None,
                    result: commands_pb2.ApplyResult | None) -> None:
        if data is None or result is None or node.sm is None:
            return
        cmd = cmds.decode(data)
        term = self.client.pop((node.id, index), None)
        if term is not None and term == node.applied_term and cmd.HasField("submit"):
            for submitted in result.submitted:
                if submitted.job.id:
                    self.acked.setdefault(submitted.job.id, index)
        # A scheduled job is made by a firing, or by any command that ends the job a buffer-one
        # time waits for (or by the leader's release of that time): each changes its last job.
        for name, job_id in node.sm.last_jobs().items():
            if job_id and job_id != self._last_jobs.get(name):
                self._fired(node, cmd, name, job_id)
        for key in self._skips:
            assert key not in self.fired, f"schedule {key[0]} time {key[1]} fired and then skipped (promise 11)"
            self.skipped.add(key)
        for job_id, before in self._before.items():
            job = node.sm.get_job(job_id)
            after = _fate(job) if job is not None else ()
            assert after == before, f"{node.id} applied a stale result to {job_id} at index {index} (promise 4)"

    def _fired(self, node: SimNode, cmd: commands_pb2.Command, name: str, job_id: str) -> None:
        assert node.sm is not None
        job = node.sm.get_job(job_id)
        schedule = node.sm.schedule(name)
        if job is None or schedule is None:  # (the simulation triggers no schedule by hand)
            return
        key = (name, job.scheduled_time)
        jobs = self.fired.setdefault(key, set())
        jobs.add(job.id)
        assert len(jobs) == 1, f"schedule {key[0]} time {key[1]} fired as {sorted(jobs)} (promise 11)"
        assert key not in self.skipped, f"schedule {key[0]} time {key[1]} skipped and then fired (promise 11)"
        if job.submitted_ms != cmd.time_ms:
            return  # an older job returned by its idempotency key
        spec = schedule.spec
        due = firetimes.due(spec, key[1])
        assert cmd.time_ms >= due, (f"schedule {key[0]} time {key[1]} fired as {job.id} by an entry stamped "
                                    f"{due - cmd.time_ms} ms before it was due")
        if not (cmd.HasField("fire_schedule") and cmd.fire_schedule.scheduled_time == key[1]):
            return  # a buffer-one time released (by a job's end, the leader, or a newer time's firing)
        late = cmd.time_ms - due
        limit = max(firetimes.window_ms(spec) + spec.jitter_ms, firetimes.ON_TIME_GRACE_MS)
        assert late <= limit, (f"schedule {key[0]} fired time {key[1]} {late} ms late, outside its catch-up "
                               f"window of {firetimes.window_ms(spec)} ms")

    # --- after every step ---

    def after_step(self) -> None:
        for job_id, running in self.alive.items():
            assert len({a for _, a in running}) <= 1, f"two attempts of job {job_id} run at once: {sorted(running)}"
        if self.world.now % LOST_CHECK_TICKS == 0:
            for node in self.world.nodes.values():
                if node.sm is not None:
                    lost = self.lost_jobs(node)
                    assert not lost, f"{node.id} lost acknowledged jobs {lost[:5]} (promise 1)"

    def lost_jobs(self, node: SimNode) -> list[str]:
        """Acknowledged jobs the node's state (applied past their submit) does not hold."""
        sm = node.sm
        assert sm is not None
        return [j for j, index in self.acked.items() if index <= node.applied and sm.job_state(j) is None]

    def unfinished(self, node: SimNode, first_only: bool = False) -> list[str]:
        """Acknowledged jobs not ended in the node's state (only the first found, if `first_only`)."""
        sm = node.sm
        assert sm is not None
        out = []
        for job_id in self.acked:
            if sm.job_state(job_id) not in TERMINAL:
                out.append(job_id)
                if first_only:
                    break
        return out


def _is_current(job: Any, attempt: int, executor: str) -> bool:
    if not job.attempts:
        return False
    last = job.attempts[-1]
    return last.number == attempt and last.executor == executor and last.end == jobs_pb2.ATTEMPT_END_UNSPECIFIED


def _fate(job: Any) -> tuple[Any, ...]:
    """What a result decides: the job's state and each attempt's end (a late report on a cancelled
    attempt may still fill in its exit code and output)."""
    return (job.state, tuple((a.number, a.executor, a.end) for a in job.attempts))

"""Schedule firing in the scheduling core: plans every schedule's due times from the committed
watermarks (`firing.plan_commands`) and proposes the decisions; plans again once they are done."""

from __future__ import annotations

from raftsched import features
from raftsched.jobstates import TERMINAL
from raftsched.scheduler.bugs import Bug
from raftsched.scheduler.corebase import CoreBase, Outcome, log
from raftsched.scheduler.firing import plan_commands
from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2

J = jobs_pb2


class ScheduleFirer(CoreBase):
    def kick_schedules(self) -> None:
        self._schedules_kicked = True
        self._kick()

    def _maybe_fire_schedules(self) -> None:
        """Decide every due time of every schedule, oldest first, from the committed watermarks;
        once those proposals are done, plan again (when kicked, due, or a while passed)."""
        if self._schedules_in_flight:
            return
        now = self.now
        due = self._schedule_wake is not None and now.wall >= self._schedule_wake
        if not (self._schedules_kicked or due or now.mono - self._last_plan >= self.config.schedule_sleep_ms):
            return
        self._schedules_kicked = False
        self._last_plan = now.mono
        wake: int | None = None
        release_when_due = self.members_read(features.RELEASE_WHEN_DUE) and Bug.RELEASE_ON_END not in self.bugs
        for schedule in self.view.schedules():
            commands, next_due = plan_commands(
                schedule, now.wall, last_job_ended=schedule.buffered and self._last_job_ended(schedule),
                release_when_due=release_when_due, ignore_window=Bug.CATCHUP_IGNORES_WINDOW in self.bugs,
                manual=Bug.FIRE_WITHOUT_DEDUP in self.bugs)
            for cmd in commands:
                self._schedules_in_flight += 1
                self._propose(cmd, self._fired(schedule.id, cmd))
            if next_due is not None:
                wake = next_due if wake is None else min(wake, next_due)
        self._schedule_wake = wake

    def _last_job_ended(self, schedule: scheduler_pb2.Schedule) -> bool:
        job = self.view.get_job(schedule.last_job_id) if schedule.last_job_id else None
        return job is None or job.state in TERMINAL

    def _fired(self, name: str, cmd: commands_pb2.Command) -> Outcome:
        def then(ok: bool, result: commands_pb2.ApplyResult | None) -> None:
            self._schedules_in_flight -= 1
            if not ok:  # a lost proposal or leadership: plan again from the state
                self._schedule_wake = self.now.wall + self.config.schedule_retry_ms
                return
            if cmd.HasField("release_buffered") and result is not None and result.job.id:
                log.info("schedule %s: released buffered time %d as job %s", name,
                         cmd.release_buffered.scheduled_time, result.job.id)
            elif cmd.HasField("skip_fires"):
                first = cmd.skip_fires.fires[0]
                log.info("schedule %s: recorded %d skipped time(s) from %d (%s)",
                         name, len(cmd.skip_fires.fires), first.scheduled_time, first.reason)
            elif result is not None and result.job.id:
                t = cmd.fire_schedule.scheduled_time
                log.info("schedule %s: fired %d as job %s, %d ms after its time", name, t, result.job.id,
                         result.job.submitted_ms - t)
            elif result is not None and result.error:
                log.info("schedule %s: firing refused: %s", name, result.error)
        return then

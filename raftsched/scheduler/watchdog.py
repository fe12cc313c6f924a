"""Failure detection and attempt timeouts in the scheduling core (promises 5, 9, 10)."""

from __future__ import annotations

from raftsched.scheduler.bugs import Bug
from raftsched.scheduler.corebase import CoreBase, Outcome, log
from raftsched.state import commands as cmds
from raftsched.v1 import commands_pb2, jobs_pb2

J = jobs_pb2


class Watchdog(CoreBase):
    def _watched(self, ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
        self._watch_in_flight -= 1
        if not ok:
            log.info("watchdog proposal lost; the next round decides again")

    def _down_done(self, executor_id: str) -> Outcome:
        def then(ok: bool, result: commands_pb2.ApplyResult | None) -> None:
            self._downing.discard(executor_id)
            self._watched(ok, result)
        return then

    def _expire_attempts(self) -> None:
        refs = self.view.timed_out(self.now.wall)
        if not refs:
            return
        until = self.now.mono + self.config.takeover_ms
        for ref in refs:
            job = self.view.get_job(ref.job_id)
            executor = job.attempts[-1].executor if job and job.attempts else ""
            self._timed_out[ref.job_id] = (ref.attempt, executor, until)
            session = self.sessions.get(executor)
            if session is not None:
                self._cancel(session, [ref])
        self._watch_in_flight += 1
        self._propose(cmds.timed_out([(r.job_id, r.attempt) for r in refs]), self._watched)

    def _detect_dead_executors(self) -> None:
        now = self.now.mono
        timeout = self.config.executor_timeout_ms
        if Bug.DOWN_BEFORE_TIMEOUT in self.bugs:
            timeout = self.config.lease_ms
        elif now - self.elected_at < timeout:
            return  # a new leader first gives every executor time to reconnect
        for info in self.view.executors():
            if info.state == J.EXECUTOR_STATE_DOWN:
                continue
            silent = now - self.last_seen.get(info.id, self.elected_at)
            if silent > timeout:
                log.warning("executor %s: silent for %.1f s, declaring it down", info.id, silent / 1000)
                session = self.sessions.get(info.id)
                if session is not None:
                    self._close(session)
                self._watch_in_flight += 1
                self._downing.add(info.id)
                down = cmds.executor_down(info.id, f"no heartbeat for {silent / 1000:.1f} s",
                                          poison_after=self.config.poison_after)
                self._propose(down, self._down_done(info.id))

"""Dispatch in the scheduling core: matching queued jobs to free executor slots, assignment batches
pipelined through the log, and pushing assignments once they applied."""

from __future__ import annotations

from collections.abc import Iterable

from raftsched.scheduler.bugs import Bug
from raftsched.scheduler.containment import Containment
from raftsched.scheduler.session import Session
from raftsched.state import commands as cmds
from raftsched.v1 import commands_pb2, executor_pb2, jobs_pb2

J = jobs_pb2
MAX_BUDGET_SKIPS = 10_000  # retries waiting for the budget one round passes over, at most


class Dispatch(Containment):
    def _dispatch(self) -> None:
        """Match queued jobs to free slots and append the batch to the log. Rounds are pipelined:
        up to `rounds_in_flight` batches replicate at once."""
        if self._rounds >= self.config.rounds_in_flight:
            return
        sessions = [s for s in self.sessions.values() if s.can_take_work() and self._accepting(s.id)]
        if not sessions:
            return
        assigning: dict[str, int] = {}
        for executor_id, slots in self._assigning.values():
            assigning[executor_id] = assigning.get(executor_id, 0) + slots
        free = {s.id: s.slots - self.view.slots_in_use(s.id) - s.dying_slots() + self._finishing_slots(s)
                - assigning.get(s.id, 0) for s in sessions}
        if max(free.values()) <= 0:
            return
        queued = (job for job in self.view.iter_queued(self.now.wall)
                  if job.id not in self._assigning and not self._held_back(job))
        matched = self._match(queued, sessions, free)
        if not matched:
            return
        items = [(job_id, attempt, executor_id) for job_id, attempt, executor_id, _ in matched]
        for job_id, _, executor_id, slots in matched:
            self._assigning[job_id] = (executor_id, slots)
        self._rounds += 1

        def then(ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
            self._rounds -= 1
            for job_id, _, _ in items:
                self._assigning.pop(job_id, None)
            if ok:
                self._push_assignments(items)
                self._kick()  # more may be waiting
            # Refused or lost: the next regular tick tries again (never at once: a proposal refused
            # before it was appended, during a leadership transfer, would be refused in a loop).

        self._propose(cmds.assign(items), then)

    def _held_back(self, job: jobs_pb2.Job) -> bool:
        """Promise 9 after a timeout: the timed-out process is told to die, but an executor that is
        cut off or dead does not hear it, and one that hears it takes up to the kill grace. The
        next attempt waits until that executor confirms the process gone (a heartbeat without it,
        or its result), or until its lease and kill grace are over. A timeout proposed before
        this leader was elected is judged by its stamped time. (Found by the simulation, seed 133.)"""
        held = self._timed_out.get(job.id)
        if held is not None:
            if self.now.mono < held[2]:
                return True
            del self._timed_out[job.id]
            return False
        last = job.attempts[-1] if job.attempts else None
        return (last is not None and last.end == J.ATTEMPT_END_TIMED_OUT and last.finished_ms < self.elected_wall
                and self.now.wall - last.finished_ms < self.config.takeover_ms)

    def _finishing_slots(self, session: Session) -> int:
        """Slots of attempts the executor reported ended whose results have not applied yet."""
        return sum(n for (job_id, attempt), n in session.finishing.items()
                   if self._is_current(job_id, attempt, session.id))

    def _accepting(self, executor_id: str) -> bool:
        info = self.view.executor(executor_id)
        return info is not None and info.state == J.EXECUTOR_STATE_CONNECTED

    def _match(self, jobs: Iterable[jobs_pb2.Job], sessions: list[Session], free: dict[str, int],
               ) -> list[tuple[str, int, str, int]]:
        """(job, attempt, executor, slots) for the jobs that fit, taken in the order given
        (priority, then submit order); each on the freest executor that accepts it (the one given
        work longest ago among equals), a retry on
        another than the one its last attempt failed on when one fits. A retry also needs a token
        of the retry budget; one without waits, and is not counted as looked at, so that new work
        behind many waiting retries is still reached (within `MAX_BUDGET_SKIPS`). Stops once no
        slot is free or `queued_per_round` jobs were looked at. Reads the jobs only."""
        items = []
        looked = skipped = 0
        self.budget_held.clear()
        for job in jobs:
            if looked >= self.config.queued_per_round or max(free.values()) <= 0:
                break
            need = job.spec.slots or 1
            fits = [s for s in sessions if free[s.id] >= need and s.accepts(job.spec)]
            if not fits:
                looked += 1
                continue
            if not self._retry_token(job):
                skipped += 1
                if skipped >= MAX_BUDGET_SKIPS:
                    break
                continue
            looked += 1
            avoid = self._avoid(job)
            fits = [s for s in fits if s.id != avoid] or fits
            # The freest; among equals the one given work longest ago, so that work arriving one job
            # at a time is spread rather than always landing on the same executor.
            best = max(fits, key=lambda s: (free[s.id], -self._placed.get(s.id, 0), s.id))
            self._placements += 1
            self._placed[best.id] = self._placements
            free[best.id] -= need
            attempt = (job.attempts[-1].number if job.attempts else 0) + 1
            items.append((job.id, attempt, best.id, need))
        return items

    def _push_assignments(self, items: list[tuple[str, int, str]]) -> None:
        by_executor: dict[str, list[executor_pb2.Assignment]] = {}
        for job_id, attempt, executor_id in items:
            if not self._is_current(job_id, attempt, executor_id):
                continue  # refused at apply (cancelled meanwhile, executor gone)
            job = self.view.get_job(job_id)
            assert job is not None
            by_executor.setdefault(executor_id, []).append(
                executor_pb2.Assignment(job_id=job_id, attempt=attempt, spec=job.spec))
            if Bug.RESEND_UNCHECKED in self.bugs:
                self._pushed.setdefault(executor_id, {})[(job_id, attempt)] = self.now.wall
        for executor_id, assignments in by_executor.items():
            session = self.sessions.get(executor_id)
            if session is not None:
                self._send(session, executor_pb2.LeaderMessage(assign=assignments))

"""The report pipeline of the scheduling core: an executor's started and finished reports are
screened (`screening`), proposed in batches (several in flight, in arrival order), and its results
acknowledged once applied."""

from __future__ import annotations

from typing import Any

from raftsched import features
from raftsched.scheduler.bugs import Bug
from raftsched.scheduler.corebase import CoreBase, log
from raftsched.scheduler.screening import (
    Holding,
    Kind,
    Reason,
    Refusal,
    result_end_ok,
)
from raftsched.scheduler.session import Session
from raftsched.state import commands as cmds
from raftsched.state.lifecycle import ERROR_MAX_CHARS
from raftsched.v1 import commands_pb2, executor_pb2, jobs_pb2

J = jobs_pb2


class Reports(CoreBase):
    def _queue_report(self, session: Session, msg: executor_pb2.ExecutorMessage) -> None:
        if self._timed_out and msg.finished:
            self._confirm_gone(session.id, [(f.job_id, f.attempt) for f in msg.finished])
        if len(session.reports) >= self.config.report_backlog:
            log.warning("executor %s: too many unreported results, closing its stream", session.id)
            self._close(session)
            return
        session.reports.append(msg)
        self._pump_reports(session)

    def _pump_reports(self, session: Session) -> None:
        """Replicate started/finished reports in batches, up to `reports_in_flight` at once. Each
        batch is appended to the log at once, in arrival order (so an attempt's start always
        precedes its end in the log); its results are acknowledged once they applied."""
        while session.open and session.reports and session.reports_in_flight < self.config.reports_in_flight:
            batch, session.reports = session.reports, []
            started, finished = self._screen_reports(
                session, [ref for m in batch for ref in m.started], [item for m in batch for item in m.finished])
            if started or finished:
                self._propose_report(session, started, finished)

    def _propose_report(self, session: Session, started: list[Any], finished: list[Any]) -> None:
        """One log entry for the batch: the starts ride in the results' command when there are
        results (the start is applied first), so a task that ended at once costs one round.
        While some member reads only the older form (a rolling upgrade), two entries."""
        refs = [(s.job_id, s.attempt) for s in started]
        commands = []
        if refs and not (finished and self.members_read(features.STARTS_IN_RESULTS)):
            commands.append(cmds.started(session.id, refs))
            refs = []
        if finished:
            items = [
                cmds.finished_item(f.job_id, f.attempt, f.end, exit_code=f.exit_code,
                                   error=f.error[:ERROR_MAX_CHARS], output_tail=f.output_tail)
                for f in finished
            ]
            commands.append(cmds.finished(session.id, items, started=refs))
            # The executor has freed these slots already: dispatch may refill them while the
            # results commit.
            slots = self._slots_of(finished)
            session.finishing.update({(f.job_id, f.attempt): slots.get(f.job_id, 1) for f in finished})
            self._kick()
        session.reports_in_flight += 1
        pending = {"left": len(commands), "ok": True}

        def then(ok: bool, _result: commands_pb2.ApplyResult | None) -> None:
            pending["left"] -= 1
            pending["ok"] = pending["ok"] and ok
            if not pending["left"]:
                self._report_done(session, finished, bool(pending["ok"]))

        for command in commands:
            self._propose(command, then)
        if finished and Bug.ACK_BEFORE_COMMIT in self.bugs:
            self._send(session, executor_pb2.LeaderMessage(
                acked=[J.AttemptRef(job_id=f.job_id, attempt=f.attempt) for f in finished]))

    def _report_done(self, session: Session, finished: list[Any], ok: bool) -> None:
        session.reports_in_flight -= 1
        for f in finished:
            session.finishing.pop((f.job_id, f.attempt), None)
        if not ok:  # a lost proposal: the executor re-reports after reconnecting
            if session.open:
                log.warning("executor %s: could not record results; closing its stream", session.id)
            self._close(session)
            return
        if finished:
            acked = [J.AttemptRef(job_id=f.job_id, attempt=f.attempt) for f in finished]
            self._send(session, executor_pb2.LeaderMessage(acked=acked))
            self._kick()
        self._pump_reports(session)

    def _screen_reports(self, session: Session, started: list[Any], finished: list[Any],
                        ) -> tuple[list[Any], list[Any]]:
        """The reports that may be proposed: on attempts the executor holds, and results of
        attempts it held and lost (recorded as stale at apply). Of the rest, a started attempt is
        cancelled and a result acknowledged (the executor forgets it); see screening."""
        current = self._current_on(session.id)
        keep_started, cancel = [], []
        for ref in started:
            if (ref.job_id, ref.attempt) in current:
                keep_started.append(ref)
            else:  # lost since (dropped: apply would refuse it) or never held (refused)
                self._judge(session, Kind.STARTED, ref.job_id, ref.attempt)
                cancel.append(J.AttemptRef(job_id=ref.job_id, attempt=ref.attempt))
        keep_finished, forget = [], []
        for item in finished:
            if not result_end_ok(item):
                detail = f"{item.job_id[:100]}/{item.attempt}: end {item.end} is not a result"
                self.refusals.add(Refusal(Kind.FINISHED, Reason.BAD_END, session.id, detail))
                forget.append(J.AttemptRef(job_id=item.job_id, attempt=item.attempt))
            elif ((item.job_id, item.attempt) in current
                  or self._judge(session, Kind.FINISHED, item.job_id, item.attempt) is not Holding.NEVER):
                keep_finished.append(item)
            else:
                forget.append(J.AttemptRef(job_id=item.job_id, attempt=item.attempt))
        self._cancel(session, cancel)
        if forget:
            self._send(session, executor_pb2.LeaderMessage(acked=forget))
        return keep_started, keep_finished

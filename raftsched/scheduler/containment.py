"""Containment in the scheduling core (promise 14): the leader's quarantine rule, the end of a
cool-off, retry anti-affinity and the cluster-wide retry budget.

The state machine keeps the facts (`raftsched.state.containment`): failures in a row on each
executor, since when, and each one's last success. The rule here reads them on the watchdog's
round: an executor with `quarantine_after` failures or timeouts in a row, while another executor
succeeded since that run began, gets no new work for a cool-off that doubles on each repeat. Only
"while another succeeds" tells a broken executor from broken jobs: when every executor fails the
same work, the work is at fault and quarantining executors would only stop the cluster.
"""

from __future__ import annotations

from raftsched.scheduler.corebase import CoreBase, log
from raftsched.state import commands as cmds
from raftsched.state.containment import SUCCESS_REFRESH_MS
from raftsched.v1 import commands_pb2, jobs_pb2

J = jobs_pb2
# Ends of an attempt after which its retry prefers another executor.
UNLUCKY_ENDS = frozenset({J.ATTEMPT_END_FAILED, J.ATTEMPT_END_TIMED_OUT, J.ATTEMPT_END_EXECUTOR_LOST,
                          J.ATTEMPT_END_FENCED})


class Containment(CoreBase):
    def _contain(self) -> None:
        """Quarantine what the rule says, and release what has served its cool-off."""
        executors = self.view.executors()
        for info in executors:
            if info.id in self._containing:
                continue
            if info.state == J.EXECUTOR_STATE_QUARANTINED and info.quarantined_until_ms <= self.now.wall:
                self._propose_containment(info.id, cmds.release(info.id, "cool-off over"), "release")
            elif info.state == J.EXECUTOR_STATE_CONNECTED:
                reason = self._quarantine_reason(info, executors)
                if reason:
                    until = self.now.wall + self._cooloff_ms(info.quarantines)
                    log.warning("executor %s: quarantined for %.0f s: %s", info.id,
                                (until - self.now.wall) / 1000, reason)
                    self._propose_containment(info.id, cmds.quarantine(info.id, until, reason), "quarantine")

    def _quarantine_reason(self, info: jobs_pb2.ExecutorInfo, executors: list[jobs_pb2.ExecutorInfo]) -> str:
        """Why the rule quarantines `info` now, or "" when it does not."""
        after = self.config.quarantine_after
        if not after or info.consecutive_failures < after:
            return ""
        # last_success_ms may be up to SUCCESS_REFRESH_MS stale (it is not rewritten on every success).
        since = info.failing_since_ms - SUCCESS_REFRESH_MS
        others = [e for e in executors if e.id != info.id and e.last_success_ms >= since]
        if not others:
            return ""
        best = max(others, key=lambda e: (e.last_success_ms, e.id))
        return (f"{info.consecutive_failures} attempts in a row failed or timed out on it, while "
                f"{best.id} succeeded")

    def _cooloff_ms(self, quarantines: int) -> int:
        return min(self.config.quarantine_ms << min(quarantines, 20), self.config.quarantine_max_ms)

    def _propose_containment(self, executor_id: str, command: commands_pb2.Command, what: str) -> None:
        def then(ok: bool, result: commands_pb2.ApplyResult | None) -> None:
            self._containing.discard(executor_id)
            if not ok or (result is not None and result.error):
                why = result.error if result is not None and result.error else "not committed"
                log.info("executor %s: %s not applied (%s); the next round decides again", executor_id, what, why)
            self._kick()

        self._containing.add(executor_id)
        self._propose(command, then)

    # --- dispatch ------------------------------------------------------------------------------------

    def _avoid(self, job: jobs_pb2.Job) -> str:
        """The executor a retry should not go back to when another fits: where the last attempt
        failed, timed out, was lost or fenced ("" for a first attempt)."""
        last = job.attempts[-1] if job.attempts else None
        return last.executor if last is not None and last.end in UNLUCKY_ENDS else ""

    def _retry_token(self, job: jobs_pb2.Job) -> bool:
        """Whether the job may be dispatched now as far as the retry budget goes: first attempts
        always; a retry when the cluster-wide bucket holds a token (it takes one)."""
        if not job.attempts or not self.config.retry_rate:
            return True
        elapsed = max(0, self.now.mono - self._tokens_at)
        self._tokens_at = self.now.mono
        self._retry_tokens = min(float(self.config.retry_burst),
                                 self._retry_tokens + elapsed * self.config.retry_rate / 1000)
        if self._retry_tokens >= 1:
            self._retry_tokens -= 1
            return True
        self.budget_held.add(job.id)
        return False

    def budget_reason(self) -> str:
        return (f"waiting for the retry budget ({self.config.retry_rate:g} retries/s cluster-wide, "
                f"burst {self.config.retry_burst})")

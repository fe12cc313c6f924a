"""Property: whatever sequence of firings, pauses, leader changes (their clocks maybe behind) and
late or repeated proposals, no (schedule, scheduled time) ever gets two jobs, no time is both fired
and skipped, and no job is created by an entry stamped before its time was due."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from state.sm_harness import temp_node

from raftsched.jobstates import TERMINAL
from raftsched.scheduler.schedules import plan_commands
from raftsched.state import commands as c
from raftsched.state import firetimes
from raftsched.state.schedules import decided_until
from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2

from .helpers import create, fire, jobs_of, pause, spec

S = scheduler_pb2
J = jobs_pb2
NAMES = ("a", "b")


class ScheduleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._ctx = temp_node()
        self.node = self._ctx.__enter__()
        self.node.up("e1", slots=64)
        self.in_flight: list[commands_pb2.Command] = []  # proposed by a leader, not yet committed

    def teardown(self) -> None:
        self._ctx.__exit__(None, None, None)

    @initialize(catchup=st.sampled_from(list(S.CatchupPolicy.values())),
                overlap=st.sampled_from(list(S.OverlapPolicy.values())))
    def first_schedule(self, catchup: int, overlap: int) -> None:
        create(self.node, spec("a", every_ms=1000, catchup=catchup, overlap=overlap))

    @rule(name=st.sampled_from(NAMES), every=st.sampled_from([1000, 2000, 5000]),
          overlap=st.sampled_from(list(S.OverlapPolicy.values())),
          catchup=st.sampled_from(list(S.CatchupPolicy.values())), jitter=st.sampled_from([0, 300, 900]),
          window=st.sampled_from([0, 3000, 10_000]))
    def create_schedule(self, name: str, every: int, overlap: int, catchup: int, jitter: int, window: int) -> None:
        if self.node.state.schedule(name) is None:
            create(self.node, spec(name, every_ms=every, overlap=overlap, catchup=catchup, jitter_ms=jitter,
                                   catchup_window_ms=window))

    @rule(ms=st.sampled_from([0, 300, 1000, 1500, 3000, 8000]))
    def clock(self, ms: int) -> None:
        self.node.tick(ms)

    @rule(skew=st.sampled_from([0, 0, -500, -3000]), commit=st.sampled_from([0, 50, 100, 100]))
    def leader_plans(self, skew: int, commit: int) -> None:
        """A leader (maybe a new one, its clock maybe behind) plans; a prefix of its proposals
        commits now, the rest stays in flight (it may commit later, or never)."""
        now = self.node.now + skew
        for schedule in self.node.state.schedules():
            last = self.node.state.get_job(schedule.last_job_id) if schedule.last_job_id else None
            commands, _ = plan_commands(schedule, now, last_job_ended=last is None or last.state in TERMINAL,
                                        release_when_due=True)
            cut = len(commands) * commit // 100
            for cmd in commands[:cut]:
                self.node.run(cmd, at=now)
            self.in_flight.extend(commands[cut:])

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), repeat=st.booleans())
    def late_commit(self, data: st.DataObject, repeat: bool) -> None:
        """An old leader's proposal commits after the new leader's, perhaps twice."""
        i = data.draw(st.integers(0, len(self.in_flight) - 1))
        cmd = self.in_flight[i] if repeat else self.in_flight.pop(i)
        self.node.run(cmd)

    @rule()
    def leader_change_drops_in_flight(self) -> None:
        self.in_flight.clear()

    @rule(name=st.sampled_from(NAMES), paused=st.booleans())
    def pause_or_resume(self, name: str, paused: bool) -> None:
        if self.node.state.schedule(name) is not None:
            pause(self.node, name, paused)

    @rule(name=st.sampled_from(NAMES))
    def trigger(self, name: str) -> None:
        if self.node.state.schedule(name) is not None:
            fire(self.node, name, self.node.now, manual=True)

    @rule(data=st.data(), end=st.sampled_from([J.ATTEMPT_END_SUCCEEDED, J.ATTEMPT_END_FAILED]),
          skew=st.sampled_from([0, 0, -500, -3000]))
    def a_job_ends(self, data: st.DataObject, end: int, skew: int) -> None:
        """Recorded by a leader whose clock may run behind the one that fired the next time."""
        queued = self.node.state.queued(2**63, 100)
        if queued:
            job = data.draw(st.sampled_from(queued))
            self.node.assign(job.id)
            attempt = self.node.job(job.id).attempts[-1].number
            self.node.run(c.finished("e1", [c.finished_item(job.id, attempt, end)]), at=self.node.now + skew)

    @invariant()
    def no_job_before_its_time_by_its_stamp(self) -> None:
        for name in NAMES:
            schedule = self.node.state.schedule(name)
            if schedule is None:
                continue
            for job in jobs_of(self.node, name):
                if "/manual/" not in job.spec.idempotency_key:
                    assert job.submitted_ms >= firetimes.due(schedule.spec, job.scheduled_time), job

    @invariant()
    def one_job_per_scheduled_time(self) -> None:
        for name in NAMES:
            jobs = [j for j in jobs_of(self.node, name) if "/manual/" not in j.spec.idempotency_key]
            counts = Counter(j.scheduled_time for j in jobs)
            assert all(n == 1 for n in counts.values()), counts.most_common(3)
            schedule = self.node.state.schedule(name)
            if schedule is None:
                continue
            fired = set(counts)
            skipped = {s.scheduled_time for s in schedule.skipped}
            assert not fired & skipped, sorted(fired & skipped)[:3]
            assert all(t <= decided_until(schedule) for t in fired | skipped)
            assert len(skipped) == len(schedule.skipped)  # no time skipped twice


ScheduleMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow])
TestSchedules = ScheduleMachine.TestCase

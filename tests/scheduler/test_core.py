"""Scenarios of the pure scheduling core (raftsched.scheduler.core) over the real state machine:
events in, the ready out, time moved by hand. Proposals are applied in order when the scenario
says so (`commit`), as a healthy Raft log would, or held back to show what the core does while
they replicate."""

from __future__ import annotations

from raftsched import features
from raftsched.scheduler.bugs import NO_BUGS, Bug, Bugs
from raftsched.scheduler.core import CoreConfig, Proposal, Ready, SchedulerCore
from raftsched.scheduler.screening import Refusals
from raftsched.scheduler.view import Now
from raftsched.state import commands as cmds
from raftsched.state.machine import SchedulerState
from raftsched.v1 import commands_pb2, executor_pb2, jobs_pb2, scheduler_pb2

from .sim.memdb import MemoryDB

J, E, S = jobs_pb2, executor_pb2, scheduler_pb2
T0 = 1_700_000_000_000
CONFIG = CoreConfig(lease_ms=3000, kill_grace_ms=1000, executor_timeout_ms=5000, resend_after_ms=2000)


class Harness:
    def __init__(self, bugs: Bugs = NO_BUGS, config: CoreConfig = CONFIG) -> None:
        self.sm = SchedulerState(MemoryDB())
        self.core = SchedulerCore("n1", config, self.sm, refusals=Refusals(clock=lambda: self.mono / 1000), bugs=bugs)
        self.sm.add_listener(self.core.job_changed)
        self.mono, self.index = 0, 0
        self.held: list[Proposal] = []  # proposed, not yet committed
        self.sent: list[tuple[str, E.LeaderMessage]] = []
        self.closes: list[tuple[str, int]] = []  # streams the core closed: (executor, gen)
        self.core.became_leader(self.now())
        self.core.set_caught_up()

    def now(self) -> Now:
        return Now(self.mono, T0 + self.mono)

    def advance(self, ms: int) -> None:
        self.mono += ms
        self.core.tick(self.now())
        self.collect()

    def collect(self) -> Ready:
        rd = self.core.take_ready()
        self.held.extend(rd.proposals)
        self.sent.extend((executor, msg) for executor, _, msg in rd.sends)
        self.closes.extend(rd.closes)
        return rd

    def apply(self, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
        self.index += 1
        result = self.sm.apply([(self.index, cmds.encode(cmd, T0 + self.mono))])[0]
        assert result is not None
        return result

    def commit(self) -> None:
        """Apply everything proposed, in order, and tell the core (which may propose more)."""
        while self.held:
            proposal = self.held.pop(0)
            self.core.proposal_done(proposal.id, True, self.apply(proposal.command))
            self.collect()

    def proposed(self) -> list[str]:
        return [p.command.WhichOneof("body") or "" for p in self.held]

    def register(self, executor: str = "e1", *, running: list[tuple[str, int]] = (), seq: int = 1,  # type: ignore[assignment]
                 incarnation: str = "", refused_ok: bool = False) -> int:
        """The stream gen, or 0 when refused (only with `refused_ok`)."""
        reg = E.Register(executor_id=executor, slots=2, handlers=["noop"], incarnation=incarnation,
                         running=[J.AttemptRef(job_id=j, attempt=a) for j, a in running])
        refused, gen = self.core.register(self.now(), E.ExecutorMessage(register=reg, heartbeat=E.Heartbeat(seq=seq)))
        assert refused_ok or not refused, refused
        self.collect()
        return gen

    def heartbeat(self, gen: int, seq: int, running: list[tuple[str, int]] = (), executor: str = "e1") -> None:  # type: ignore[assignment]
        hb = E.Heartbeat(seq=seq, running=[J.AttemptRef(job_id=j, attempt=a) for j, a in running])
        assert self.core.message(self.now(), executor, gen, E.ExecutorMessage(heartbeat=hb)) == ""
        self.collect()

    def of_kind(self, kind: str) -> list[E.LeaderMessage]:
        repeated = kind in ("assign", "cancel", "acked")
        return [msg for _, msg in self.sent if (len(getattr(msg, kind)) if repeated else msg.HasField(kind))]


def submit(h: Harness, **fields: object) -> str:
    return h.apply(cmds.submit(J.JobSpec(handler="noop", **fields))).submitted[0].job.id  # type: ignore[arg-type]


def test_a_registration_reads_its_heartbeat_only_once_recorded() -> None:
    h = Harness()
    h.register()
    assert h.proposed() == ["executor_up"]
    assert not h.of_kind("heartbeat_ack"), "the lease was granted before the executor was recorded"
    h.commit()
    acks = h.of_kind("heartbeat_ack")
    assert [a.heartbeat_ack.seq for a in acks] == [1] and acks[0].heartbeat_ack.lease_ms == 3000


def test_queued_work_is_assigned_then_sent_once_the_batch_applied() -> None:
    h = Harness()
    h.register()
    h.commit()
    job = submit(h)
    h.advance(100)
    assert h.proposed() == ["assign"]
    assert not h.of_kind("assign"), "sent before the assignment was in the log"
    h.commit()
    assert [(a.job_id, a.attempt) for m in h.of_kind("assign") for a in m.assign] == [(job, 1)]


def test_an_executor_is_declared_down_after_its_timeout_not_before() -> None:
    h = Harness()
    gen = h.register()
    h.commit()
    h.advance(4900)
    h.heartbeat(gen, 2)  # heard at 4.9 s
    h.advance(5000)  # 5.0 s of silence: not yet
    assert "executor_down" not in h.proposed()
    h.advance(200)
    assert h.proposed() == ["executor_down"]


def test_a_new_leader_waits_one_timeout_before_declaring_anyone_down() -> None:
    h = Harness()
    h.apply(cmds.executor_up("e9", 2))  # known from an earlier term, never heard by this leader
    h.advance(4900)
    assert "executor_down" not in h.proposed()
    h.advance(300)
    assert h.proposed() == ["executor_down"]


def test_reregistering_without_an_attempt_fences_it_before_reading_the_heartbeat() -> None:
    """The bug a chaos run found: the heartbeat read before the fencing re-sent the lost attempt."""
    for bugs, resent in ((NO_BUGS, False), (Bugs(frozenset({Bug.FENCE_AFTER_HEARTBEAT})), True)):
        h = Harness(bugs)
        gen = h.register()
        h.commit()
        job = submit(h)
        h.advance(100)
        h.commit()  # assigned and sent; the executor dies before it starts it
        h.core.stream_closed("e1", gen)
        h.sent.clear()
        h.advance(2500)  # older than resend_after
        h.register(seq=1)
        assert ("finished" in h.proposed()) is True
        assert bool(h.of_kind("assign")) is resent, h.sent
        h.commit()
        assert h.sm.get_job(job).attempts[-1].end == J.ATTEMPT_END_FENCED  # type: ignore[union-attr]


def test_the_same_process_takes_its_id_back_at_once_another_only_after_the_silence() -> None:
    h = Harness()
    old = h.register(incarnation="p1")
    h.commit()
    job = submit(h)
    h.advance(100)
    h.commit()  # assigned to e1 on its first stream
    h.advance(1500)  # cut off: silent 1.5 s, well within lease + kill grace
    assert h.register(seq=5, incarnation="p2", refused_ok=True) == 0  # another process: refused
    assert h.register(seq=6, refused_ok=True) == 0  # an agent that sends no incarnation: refused
    h.sent.clear()
    new = h.register(seq=7, running=[(job, 1)], incarnation="p1")  # the same process, back
    assert new > old and h.closes == [("e1", old)], h.closes
    h.commit()
    h.heartbeat(new, 8, running=[(job, 1)])
    h.commit()
    state = h.sm.get_job(job)
    assert state is not None and state.state == J.JOB_STATE_ASSIGNED, state
    assert [(a.executor, a.end) for a in state.attempts] == [("e1", J.ATTEMPT_END_UNSPECIFIED)]  # nothing fenced
    assert "finished" not in h.proposed()
    # Past lease + kill grace of silence, another process takes the id over.
    h.advance(CONFIG.takeover_ms)
    assert h.register(seq=1, incarnation="p3") > new


def test_a_result_for_an_attempt_never_held_is_refused_and_forgotten() -> None:
    h = Harness()
    gen = h.register()
    h.commit()
    result = E.TaskFinished(job_id="j404", attempt=1, end=J.ATTEMPT_END_SUCCEEDED)
    assert h.core.message(h.now(), "e1", gen, E.ExecutorMessage(finished=[result])) == ""
    h.collect()
    assert h.proposed() == []
    assert [(r.job_id, r.attempt) for m in h.of_kind("acked") for r in m.acked] == [("j404", 1)]
    assert h.core.refusals.total() == 1


def test_results_are_acknowledged_only_once_applied() -> None:
    h = Harness()
    gen = h.register()
    h.commit()
    job = submit(h)
    h.advance(100)
    h.commit()
    h.sent.clear()
    done = E.TaskFinished(job_id=job, attempt=1, end=J.ATTEMPT_END_SUCCEEDED)
    h.core.message(h.now(), "e1", gen, E.ExecutorMessage(finished=[done]))
    h.collect()
    assert h.proposed() == ["finished"] and not h.of_kind("acked")
    h.commit()
    assert h.of_kind("acked") and h.sm.get_job(job).state == J.JOB_STATE_SUCCEEDED  # type: ignore[union-attr]


def test_a_start_and_a_result_in_one_message_are_one_entry() -> None:
    """A task that ends at once is reported started and finished together: one log entry (one
    replication round), the start applied first; a lone start is its own started entry."""
    h = Harness()
    gen = h.register()
    h.commit()
    first, second = submit(h), submit(h)
    h.advance(100)
    h.commit()
    ref = E.TaskStarted(job_id=first, attempt=1)
    done = E.TaskFinished(job_id=first, attempt=1, end=J.ATTEMPT_END_SUCCEEDED)
    h.core.message(h.now(), "e1", gen, E.ExecutorMessage(started=[ref], finished=[done]))
    h.collect()
    assert h.proposed() == ["finished"]
    command = h.held[-1].command.finished
    assert [(s.job_id, s.attempt) for s in command.started] == [(first, 1)]
    h.commit()
    job = h.sm.get_job(first)
    assert job is not None and job.state == J.JOB_STATE_SUCCEEDED and job.attempts[0].started_ms
    h.core.message(h.now(), "e1", gen, E.ExecutorMessage(started=[E.TaskStarted(job_id=second, attempt=1)]))
    h.collect()
    assert h.proposed()[-1:] == ["started"]


def test_while_a_member_reads_only_the_older_form_a_start_and_a_result_are_two_entries() -> None:
    """A rolling upgrade: a node of the earlier version would skip starts inside a result."""
    h = Harness()
    h.core.members_read = lambda feature: False
    gen = h.register()
    h.commit()
    job = submit(h)
    h.advance(100)
    h.commit()
    h.core.message(h.now(), "e1", gen, E.ExecutorMessage(
        started=[E.TaskStarted(job_id=job, attempt=1)],
        finished=[E.TaskFinished(job_id=job, attempt=1, end=J.ATTEMPT_END_SUCCEEDED)]))
    h.collect()
    assert h.proposed() == ["started", "finished"]
    assert not h.held[-1].command.finished.started
    h.commit()
    done = h.sm.get_job(job)
    assert done is not None and done.state == J.JOB_STATE_SUCCEEDED and done.attempts[0].started_ms
    assert [(r.job_id, r.attempt) for m in h.of_kind("acked") for r in m.acked] == [(job, 1)]


def test_due_fire_times_are_proposed_once_per_plan() -> None:
    h = Harness()
    spec = S.ScheduleSpec(name="s", every_ms=1000, template=J.JobSpec(handler="noop"))
    h.apply(commands_pb2.Command(create_schedule=commands_pb2.CreateScheduleCmd(spec=spec)))
    h.advance(1000)
    fires = [p for p in h.held if p.command.HasField("fire_schedule")]
    assert [p.command.fire_schedule.scheduled_time for p in fires] == [T0 + 1000]
    h.advance(100)
    assert len(h.held) == 1, "planned again while the firing was replicating"
    h.commit()
    schedule = h.sm.schedule("s")
    assert schedule is not None and schedule.last_fired_time == T0 + 1000


def test_fire_times_are_buffered_release_when_due_only_while_every_member_reads_it() -> None:
    """A rolling upgrade: a node of the earlier version would release a buffered time as soon as
    the job ahead ends, whatever the ending entry's stamp, and its state would drift."""
    read: set[int] = set()
    h = Harness()
    h.core.members_read = lambda feature: feature in read
    spec = S.ScheduleSpec(name="s", every_ms=1000, template=J.JobSpec(handler="noop"),
                          overlap=S.OVERLAP_POLICY_BUFFER_ONE)
    h.apply(commands_pb2.Command(create_schedule=commands_pb2.CreateScheduleCmd(spec=spec)))
    flags = []
    for _ in range(2):
        h.advance(1000)
        flags += [p.command.fire_schedule.release_when_due for p in h.held if p.command.HasField("fire_schedule")]
        h.commit()
        read.add(features.RELEASE_WHEN_DUE)
    assert flags == [False, True]


def test_registering_while_declared_down_records_the_executor_up_again() -> None:
    """Found by the simulation (seed 33): a registration that raced the executor_down proposal
    left the executor DOWN with a live stream, so it never got work again."""
    h = Harness()
    h.register()
    h.commit()
    h.advance(5200)  # silent past the timeout: executor_down is proposed, not yet applied
    assert h.proposed() == ["executor_down"]
    h.register(seq=7)  # it comes back meanwhile (its old stream was closed)
    assert h.proposed() == ["executor_down", "executor_up"]
    h.commit()
    info = h.sm.executor("e1")
    assert info is not None and info.state == J.EXECUTOR_STATE_CONNECTED


def test_a_timed_out_attempt_is_retried_only_once_its_process_is_gone() -> None:
    """Found by the simulation (seed 133): the retry of a timed-out attempt ran beside it while its
    executor, cut off, had not heard the cancel (promise 9)."""
    h = Harness()
    gen = h.register()
    h.commit()
    job = submit(h, timeout_ms=1000, backoff=J.RetryBackoff(initial_ms=100))
    h.advance(100)
    h.commit()
    h.advance(500)
    h.heartbeat(gen, 2, [(job, 1)])
    h.advance(600)  # timed out: cancelled and recorded, its executor silent since
    assert h.proposed() == ["timed_out"]
    h.commit()
    h.advance(1000)
    assert "assign" not in h.proposed(), "retried while the timed-out process may still run"
    h.heartbeat(gen, 3, [])  # gone
    h.advance(100)
    assert h.proposed() == ["assign"]


def test_a_refused_round_waits_for_the_next_tick() -> None:
    """A proposal refused before it was appended (a leadership transfer) must not make the shell
    tick again at once: it would be refused again, in a loop that never yields (seen in a test
    run: the event loop held for 5 s)."""
    h = Harness()
    h.register()
    h.commit()
    submit(h)
    h.advance(100)
    (proposal,) = h.held
    h.held.clear()
    h.core.proposal_done(proposal.id, False)
    rd = h.collect()
    assert not rd.kick and not rd.proposals
    h.advance(100)
    assert h.proposed() == ["assign"]

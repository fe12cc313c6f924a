"""A simulated executor, after `raftsched.executor.agent`: one stream to the leader at a time,
heartbeats every `heartbeat_ms`, the real `Lease` (measured from when a heartbeat was sent), tasks
of random length, results kept until acknowledged and re-sent at registration.

The agent can crash (it and its stream die; its task processes live on under the guard until the
lease ends, then die within the kill grace), freeze (it does nothing; the guard still kills at the
lease's end), be cut off from every node, or sit behind a slow link. Task processes are what the
overlap checker watches: `alive(key)`.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from raftsched.executor.lease import Lease
from raftsched.scheduler.bugs import Bug
from raftsched.v1 import executor_pb2, jobs_pb2

if TYPE_CHECKING:
    from .world import World

J = jobs_pb2
E = executor_pb2
Key = tuple[str, int]


class ReceiveTimeLease(Lease):
    """Bug.LEASE_FROM_RECEIVE: the deadline counts from the ack's arrival."""

    def maybe_extend(self, seq: int, lease_ms: int) -> bool:
        if seq not in self._sent:
            return False
        self._sent[seq] = self._clock()
        return super().maybe_extend(seq, lease_ms)


@dataclass(slots=True)
class Task:
    key: Key
    slots: int
    ends_at: int  # tick the process exits on its own
    outcome: int
    dies_at: int | None = None  # tick a kill takes effect
    kill_end: int = 0
    kill_error: str = ""
    orphan: bool = False  # its agent crashed: a restarted agent does not know it


@dataclass(slots=True)
class Stream:
    node: str
    gen: int
    up: deque[tuple[int, E.ExecutorMessage]] = field(default_factory=deque)  # to the leader: (due, msg)
    down: deque[tuple[int, E.LeaderMessage]] = field(default_factory=deque)  # from the leader
    last_heard: int = 0  # tick of the last leader message


class SimExecutor:
    def __init__(self, executor_id: str, world: World, rng: random.Random, *, slots: int) -> None:
        self.id = executor_id
        self.world = world
        self.rng = rng
        self.slots = slots
        self.tasks: dict[Key, Task] = {}  # task processes alive (also of a crashed agent)
        self.unacked: dict[Key, E.TaskFinished] = {}
        self.stream: Stream | None = None
        self.seq = 0
        self.restarts = 0  # names the agent process: the registration's incarnation
        self.crashed_until: int | None = None
        self.frozen_until = 0
        self.cut_until = 0  # no link to any node
        self.latency = 0  # extra ticks each way (a slow link)
        self.next_connect = 0
        self.next_heartbeat = 0
        self.hint = ""
        self.lease = self._new_lease()
        self.held: list[E.ExecutorMessage] = []  # what a frozen agent will send when it runs again
        self.outages: list[tuple[int, int]] = []  # (from, to) ticks the agent was cut or frozen

    def _new_lease(self) -> Lease:
        kind = ReceiveTimeLease if Bug.LEASE_FROM_RECEIVE in self.world.bugs else Lease
        return kind(cap_ms=self.world.timing.lease_ms, clock=lambda: self.world.mono / 1000)

    # --- faults ---

    def crash(self, down_ticks: int, *, host: bool = False) -> None:
        """The agent dies: its connection resets (the leader sees the stream end), or, when the
        whole `host` goes, the leader hears nothing and finds out by silence."""
        if self.crashed_until is not None:
            return
        self.crashed_until = self.world.now + down_ticks
        for task in self.tasks.values():
            task.orphan = True
        if host:
            self.stream = None
        else:
            self._close_stream("crashed")
        self.unacked.clear()
        self.held.clear()
        self.world.log(f"{self.id} {'host' if host else 'agent'} crashes for {down_ticks} ticks "
                       f"({len(self.tasks)} task processes live on)")

    def freeze(self, ticks: int) -> None:
        self.frozen_until = max(self.frozen_until, self.world.now + ticks)
        self.outages.append((self.world.now, self.frozen_until))
        self.world.log(f"{self.id} freezes for {ticks} ticks")

    def cut(self, ticks: int) -> None:
        self.cut_until = max(self.cut_until, self.world.now + ticks)
        self.outages.append((self.world.now, self.cut_until))
        self.world.log(f"{self.id} cut off for {ticks} ticks")

    def heal(self) -> None:
        self.cut_until = self.frozen_until = 0
        self.latency = 0
        if self.crashed_until is not None:
            self.crashed_until = self.world.now

    @property
    def agent_up(self) -> bool:
        return self.crashed_until is None and self.world.now >= self.frozen_until

    def linked(self) -> bool:
        return self.world.now >= self.cut_until

    # --- the guard and the task processes (run even when the agent is frozen or dead) ---

    def _guard(self) -> None:
        now = self.world.now
        deadline = self.lease.deadline
        lapsed = deadline is None or deadline * 1000 <= self.world.mono
        for task in list(self.tasks.values()):
            if lapsed and task.dies_at is None:
                self._kill(task, J.ATTEMPT_END_FENCED, "lease expired")
            if task.dies_at is not None and now >= task.dies_at:
                self._exit(task, task.kill_end, -9, task.kill_error)
            elif now >= task.ends_at:
                self._exit(task, task.outcome, 0 if task.outcome == J.ATTEMPT_END_SUCCEEDED else 1, "")

    def _kill(self, task: Task, end: int, error: str) -> None:
        grace = self.world.timing.kill_grace_ms // 100
        task.dies_at = self.world.now + self.rng.randint(0, max(grace - 1, 0))
        task.kill_end, task.kill_error = end, error
        self.world.check.killed(self.id, task.key, error)

    def _exit(self, task: Task, end: int, exit_code: int, error: str) -> None:
        del self.tasks[task.key]
        self.world.check.task_exited(self.id, task.key)
        if self.crashed_until is not None:
            return  # nobody is left to report it
        result = E.TaskFinished(job_id=task.key[0], attempt=task.key[1], end=end, exit_code=exit_code, error=error)
        self.world.check.reported(self.id, result)
        self.unacked[task.key] = result
        self._push(E.ExecutorMessage(finished=[result]))

    # --- the agent ---

    def step(self) -> None:
        now = self.world.now
        if self.crashed_until is not None and now >= self.crashed_until:
            self.crashed_until = None
            self.restarts += 1
            self.lease = self._new_lease()
            self.stream = None
            self.world.log(f"{self.id} restarts ({len(self.tasks)} orphan task processes)")
        self._guard()
        if not self.agent_up:
            return
        held, self.held = self.held, []
        for msg in held:
            self._push(msg)
        self._deliver()
        stream = self.stream
        if stream is None:
            if now >= self.next_connect:
                self._connect()
            return
        stall = max(self.world.timing.lease_ms, 2 * self.world.timing.heartbeat_ms) // 100
        if now - stream.last_heard > stall:
            self._close_stream("the leader went silent")
            return
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.world.timing.heartbeat_ms // 100
            self._push(E.ExecutorMessage(heartbeat=self._heartbeat()))

    def _heartbeat(self) -> E.Heartbeat:
        self.seq += 1
        self.lease.heartbeat_sent(self.seq)
        return E.Heartbeat(seq=self.seq, running=self._running())

    def _running(self) -> list[J.AttemptRef]:
        """What the agent reports running: its tasks until they exit (dying ones too)."""
        return [self._ref(k) for k, t in self.tasks.items() if not t.orphan]

    @staticmethod
    def _ref(key: Key) -> J.AttemptRef:
        return J.AttemptRef(job_id=key[0], attempt=key[1])

    def _connect(self) -> None:
        world = self.world
        self.next_connect = world.now + self.rng.randint(1, 3)
        if not self.linked():
            return
        target = self.hint if self.hint and self.rng.random() < 0.8 else self.rng.choice(world.ids)
        if world.nodes[target].core is None:
            self.hint = ""
            return
        register = E.Register(executor_id=self.id, slots=self.slots, handlers=["sleep"],
                              running=self._running(),
                              unacked=list(self.unacked.values()), incarnation=f"{self.id}.{self.restarts}")
        # The stream exists before the leader answers: what it sends while registering arrives.
        self.stream = stream = Stream(target, 0, last_heard=world.now)
        refused, gen = world.register(target, E.ExecutorMessage(register=register, heartbeat=self._heartbeat()))
        if refused:
            self.stream = None
            leader = world.nodes[target].core
            self.hint = leader.leader if leader is not None and leader.leader else ""
            return
        stream.gen = gen
        self.hint = target
        self.next_heartbeat = world.now + world.timing.heartbeat_ms // 100
        world.log(f"{self.id} registered at {target} (stream {gen})")

    def _close_stream(self, why: str) -> None:
        stream, self.stream = self.stream, None
        if stream is None:
            return
        self.world.log(f"{self.id} closes its stream to {stream.node}: {why}")
        if self.linked():  # the leader sees the stream end only when the close reaches it
            self.world.stream_closed(stream.node, self.id, stream.gen)

    def _push(self, msg: E.ExecutorMessage) -> None:
        stream = self.stream
        if self.crashed_until is None and not self.agent_up:
            self.held.append(msg)  # a frozen agent does this when it runs again
            return
        if stream is None:
            return  # results wait in `unacked` for the next registration
        due = self.world.now + 1 + self.latency
        if stream.up:
            due = max(due, stream.up[-1][0])
        stream.up.append((due, msg))

    def _deliver(self) -> None:
        stream = self.stream
        if stream is None or not self.linked():
            return
        now = self.world.now
        while stream.up and stream.up[0][0] <= now and self.stream is stream:
            _, msg = stream.up.popleft()
            problem = self.world.executor_message(stream.node, stream.gen, self.id, msg)
            if problem:
                self._close_stream(problem)
                return
        while stream.down and stream.down[0][0] <= now and self.stream is stream:
            _, leader_msg = stream.down.popleft()
            stream.last_heard = now
            self._handle(leader_msg)

    # --- leader messages ---

    def from_leader(self, node: str, gen: int, msg: E.LeaderMessage) -> None:
        stream = self.stream
        if stream is None or stream.node != node or stream.gen not in (gen, 0):
            return  # that stream is gone (a cut link holds what is in flight, like TCP)
        due = self.world.now + 1 + self.latency
        if stream.down:
            due = max(due, stream.down[-1][0])
        stream.down.append((due, msg))

    def closed_by_leader(self, node: str, gen: int) -> None:
        stream = self.stream
        if stream is not None and stream.node == node and stream.gen == gen and self.linked():
            self.stream = None

    def node_gone(self, node: str) -> None:
        if self.stream is not None and self.stream.node == node:
            self.stream = None  # the connection resets

    def _handle(self, msg: E.LeaderMessage) -> None:
        if msg.HasField("heartbeat_ack"):
            self.lease.maybe_extend(msg.heartbeat_ack.seq, msg.heartbeat_ack.lease_ms)
        for ref in msg.acked:
            if self.unacked.pop((ref.job_id, ref.attempt), None) is not None and self.stream is not None:
                self.world.check.result_acked(self.stream.node, self.id, (ref.job_id, ref.attempt))
        for ref in msg.cancel:
            task = self.tasks.get((ref.job_id, ref.attempt))
            if task is not None and task.dies_at is None:
                self._kill(task, J.ATTEMPT_END_CANCELLED, "cancelled by the leader")
        for assignment in msg.assign:
            self._accept(assignment)

    def _accept(self, a: E.Assignment) -> None:
        key = (a.job_id, a.attempt)
        if (key in self.tasks and not self.tasks[key].orphan) or key in self.unacked:
            return
        need = a.spec.slots or 1
        if not self.lease.held():
            self._refuse(key, J.ATTEMPT_END_FENCED, "lease not held")
        elif sum(t.slots for t in self.tasks.values()) + need > self.slots:
            self._refuse(key, J.ATTEMPT_END_FAILED, "no free slots")
        else:
            length = int.from_bytes(a.spec.payload[:2] or b"\x00\x05", "big")
            outcome = J.ATTEMPT_END_FAILED if a.spec.payload[2:3] == b"F" else J.ATTEMPT_END_SUCCEEDED
            task = Task(key, need, self.world.now + max(1, length), outcome)
            self.tasks[key] = task
            self.world.check.task_started(self.id, key)
            self._push(E.ExecutorMessage(started=[E.TaskStarted(job_id=key[0], attempt=key[1])]))

    def _refuse(self, key: Key, end: int, error: str) -> None:
        result = E.TaskFinished(job_id=key[0], attempt=key[1], end=end, exit_code=-1, error=error)
        self.world.check.reported(self.id, result)
        self.unacked[key] = result
        self._push(E.ExecutorMessage(finished=[result]))

    def describe(self) -> str:
        state = "crashed" if self.crashed_until is not None else "frozen" if not self.agent_up else "up"
        stream = f"{self.stream.node}/{self.stream.gen}" if self.stream else "-"
        lease = self.lease.deadline
        return (f"{self.id}: {state} stream={stream} tasks={sorted(self.tasks)} unacked={len(self.unacked)} "
                f"lease_until={lease}")

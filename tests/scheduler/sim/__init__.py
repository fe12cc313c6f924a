"""The deterministic simulation of the scheduling layer (issue 15): the real Raft core, the real
state machine (over an in-memory store), the real SchedulerCore on every node, simulated executors
and simulated time; one seed drives every choice. A failure prints the command that replays it."""

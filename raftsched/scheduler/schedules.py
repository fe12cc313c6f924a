"""Schedule firing: the decisions live in the core (`SchedulerCore._maybe_fire_schedules`) and the
commands in `raftsched.scheduler.firing`; this module keeps the names the API uses (a manual
trigger is a `fire_cmd(..., manual=True)` stamped with the leader's clock)."""

from __future__ import annotations

from raftsched.clock import now_ms
from raftsched.scheduler.firing import fire_cmd, plan_commands, skip_cmd

__all__ = ["fire_cmd", "now_ms", "plan_commands", "skip_cmd"]

"""Planted membership bugs: subclasses of the real core, each breaking one rule of single-server
membership changes (thesis §4.1, §4.2.2) that the membership simulation must catch.

As in `bugs.py`, each override copies the real method and changes exactly one thing (`# BUG`).
Used by `tests/raft/test_membership_sim.py` and `python -m tests.raft.sim.replay --membership --bug NAME`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raftsched.raft.config import ConfigChange, InvalidChangeError, apply_change, encode_change
from raftsched.raft.core import RaftConfig, RaftCore
from raftsched.raft.errors import ProposalDroppedError
from raftsched.raft.messages import Entry, EntryType
from raftsched.raft.storage import MemoryStorage


class TwoChangesInFlight(RaftCore):
    """Accepts a new membership change while the previous one is still uncommitted."""

    def propose_config(self, change: ConfigChange) -> tuple[int, int]:
        self._check_can_propose()
        # BUG: no `if self.pending_conf_index > self.log.committed: raise ProposalDroppedError`
        try:
            apply_change(self.conf, change)
        except InvalidChangeError as err:
            raise ProposalDroppedError(str(err)) from err
        index = self.log.last_index() + 1
        self._append([Entry(self.term, index, EntryType.CONFIG, encode_change(change))])
        self.pending_conf_index = index
        return index, self.term


class LearnerCampaigns(RaftCore):
    """Lets any member (a learner too) start elections."""

    def _promotable(self) -> bool:
        return self.id in self.conf.members() and self.log.pending_snapshot is None  # BUG: members, not voters


class RemovedLeaderStays(RaftCore):
    """A leader that commits its own removal keeps leading (§4.2.2 says it steps down)."""

    def _set_config(self, conf, index):  # type: ignore[no-untyped-def]
        super()._set_config(conf, index)
        self.removed_at = 0  # BUG: the removal is never noted


class KeepsTruncatedConfig(RaftCore):
    """When a follower's conflicting suffix is replaced, the configurations it carried stay."""

    def _truncate_configs(self, from_index: int) -> None:
        while self._conf_history and self._conf_history[-1][0] >= from_index:
            self._conf_history.pop()  # BUG: the previous configuration is not restored


CoreFactory = Callable[[RaftConfig, MemoryStorage, random.Random, int], RaftCore]

MEMBER_BUGS: dict[str, CoreFactory] = {
    "two-changes-in-flight": TwoChangesInFlight,
    "learner-campaigns": LearnerCampaigns,
    "removed-leader-stays": RemovedLeaderStays,
    "keeps-truncated-config": KeepsTruncatedConfig,
}

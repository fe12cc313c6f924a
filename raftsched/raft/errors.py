"""Typed errors of the Raft core.

    RaftError
     +-- NotLeaderError        this node cannot take the request; `leader` is a hint ("" if unknown)
     +-- ProposalDroppedError  the leader refuses for now (transfer or membership change in flight)
     |    +-- TransferInProgressError  leadership is being handed to `transferee`
     +-- StateOutOfRangeError  the stored term or log is beyond MAX_TERM / MAX_INDEX (validate.py)
"""

from __future__ import annotations


class RaftError(Exception):
    """Base of every error the core raises on purpose."""


class NotLeaderError(RaftError):
    def __init__(self, leader: str) -> None:
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")
        self.leader = leader


class ProposalDroppedError(RaftError):
    """The leader is transferring leadership or already has a membership change in flight."""


class TransferInProgressError(ProposalDroppedError):
    """The leader is handing leadership to `transferee`: it ends within an election timeout."""

    def __init__(self, transferee: str) -> None:
        super().__init__(f"leadership is being transferred to {transferee}")
        self.transferee = transferee


class StateOutOfRangeError(RaftError):
    """The persisted state holds a term or index this build refuses on the wire. Only a hostile
    message accepted by a build without issue 14's validation leaves such a state: the node cannot
    campaign or append any more. Restore the data directory from a backup."""

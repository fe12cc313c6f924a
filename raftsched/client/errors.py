"""Errors the client raises: a small tree, told apart by type (never by message text).

    ClientError(code, message)     every failure of a call; `code` is the gRPC status code name
     |                             (NOT_FOUND, INVALID_ARGUMENT, ...) and `message` the server's own
     |                             words, so callers can branch on the code and show the message
     +-- NotLeaderError            FAILED_PRECONDITION from a node that is not the leader (its
     |                             `leader` hint, '' when it knows none): nothing was applied
     +-- UnavailableError          UNAVAILABLE: certainly not applied (SPEC §4); safe to retry
     |    +-- OverloadedError      RESOURCE_EXHAUSTED for load: refused before proposing; back off
     +-- OutcomeUnknownError       DEADLINE_EXCEEDED, or an UNAVAILABLE the server marked
                                   `raftsched-outcome: unknown` (the write may or may not apply):
                                   retry only with the same idempotency key, or read to find out

`error_for` is the one place a status becomes one of these.
"""

from __future__ import annotations

OUTCOME_METADATA_KEY = "raftsched-outcome"  # "unknown" on a status whose write may have applied


class ClientError(Exception):
    """A call failed with gRPC status `code` (its name) and the server's message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """Safe to repeat: nothing was applied (UNAVAILABLE is promised to mean so)."""
        return self.code == "UNAVAILABLE"


class NotLeaderError(ClientError):
    """The node answering is not the leader; nothing was applied. `leader` names the leader's
    address when the node knows it."""

    def __init__(self, code: str, message: str, leader: str = "") -> None:
        super().__init__(code, message)
        self.leader = leader


class UnavailableError(ClientError):
    """No leader or no quorum could take the call: certainly not applied; safe to retry."""


class OverloadedError(UnavailableError):
    """The leader refused the call before proposing it (too many proposals pending): back off."""


class OutcomeUnknownError(ClientError):
    """The call may or may not have been applied (cut off by a timeout or a leader change)."""


def error_for(code: str, message: str, *, hint: str | None = None, outcome_unknown: bool = False,
              overloaded: bool = False) -> ClientError:
    """The typed error for a failed call: gRPC status `code` (its name), the server's `message`,
    the `raftsched-leader` hint (None: absent) and the `raftsched-outcome: unknown` mark."""
    if outcome_unknown or code == "DEADLINE_EXCEEDED":
        return OutcomeUnknownError(code, message)
    if code == "UNAVAILABLE":
        return UnavailableError(code, message)
    if code == "FAILED_PRECONDITION" and hint is not None:
        return NotLeaderError(code, message, hint)
    if overloaded:
        return OverloadedError(code, message)
    return ClientError(code, message)

"""Errors the client raises.

    ClientError(code, message)   every failure of a call; `code` is the gRPC status code name
                                 (UNAVAILABLE, NOT_FOUND, INVALID_ARGUMENT, ...) and `message`
                                 the server's own words, so callers can branch on the code and
                                 show the message to a person.
"""

from __future__ import annotations


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

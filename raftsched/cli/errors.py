"""The CLI's own errors; main() maps each to one stderr line and an exit code."""

from __future__ import annotations


class UsageError(Exception):
    """The command line is wrong (exit 2); nothing was sent to the cluster."""


class NotImplementedYet(UsageError):
    """The command exists but the code behind it does not yet (exit 2)."""


class CommandFailed(Exception):
    """The command could not do its work for a reason other than the cluster's answer (exit 1)."""

"""The Python client of a raftsched cluster.

    from raftsched.client import Client
    with Client(["127.0.0.1:7001", "127.0.0.1:7002"]) as c:
        job = c.submit_job(JobSpec(handler="noop")).job

Both clients try the last known leader first, follow `raftsched-leader` hints, retry what is safe
to retry within the call's deadline, and raise ClientError(code, message) otherwise: typed as
NotLeaderError, UnavailableError (certainly not applied) or OutcomeUnknownError where the status
says so (raftsched.client.errors).
"""

from raftsched.client.aio import AsyncClient
from raftsched.client.errors import (
    ClientError,
    NotLeaderError,
    OutcomeUnknownError,
    OverloadedError,
    UnavailableError,
)
from raftsched.client.sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "NotLeaderError",
    "OutcomeUnknownError",
    "OverloadedError",
    "UnavailableError",
]

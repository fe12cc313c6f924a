"""Webhook delivery of notification events (SPEC §10): the leader's side.

`webhook` is pure (the body, its signature, the backoff); `delivery` is the leader-only asyncio
task that POSTs, retries and reports progress back through the Raft log.
"""

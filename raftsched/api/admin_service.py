"""Operators' API (SPEC §4 Admin): cluster status, membership, leadership transfer, backups, and a
debug read of the committed log used by the chaos checker."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from raftsched.api.errors import ApiError, guarded, status_of
from raftsched.api.forward import call_leader, forwarded_metadata, was_forwarded
from raftsched.quoting import quote
from raftsched.raft.config import ChangeKind, ConfigChange, InvalidChangeError, apply_change
from raftsched.raft.messages import Role
from raftsched.storage import bundle
from raftsched.storage.backup import BackupHeader, header_info
from raftsched.transport import convert
from raftsched.v1 import admin_pb2, admin_pb2_grpc, raft_pb2

if TYPE_CHECKING:
    from raftsched.node import Node

MEMBER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as raftsched.config.check_id
MAX_ADDRESS_CHARS = 255
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
PEER_STATUS_TIMEOUT = 1.0
READ_LOG_LIMIT = 10_000
BACKUP_CHUNK = 1 << 20


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    @guarded
    async def Status(self, request: admin_pb2.StatusRequest, context: Context) -> Any:
        local = self.node.local_status()
        if request.local_only:
            return admin_pb2.StatusResponse(nodes=[local])
        peers = sorted(p for p in self.node.addresses if p != self.node.id)
        others = await asyncio.gather(*(self._peer_status(p) for p in peers))
        nodes = sorted([local, *others], key=lambda n: n.id)
        return admin_pb2.StatusResponse(nodes=nodes)

    async def _peer_status(self, peer: str) -> admin_pb2.NodeStatus:
        address = self.node.addresses[peer]
        stub = admin_pb2_grpc.AdminStub(self.node.forwarder.channel(address))
        try:
            response = await stub.Status(admin_pb2.StatusRequest(local_only=True), timeout=PEER_STATUS_TIMEOUT)
            return response.nodes[0]
        except grpc.aio.AioRpcError as err:
            return admin_pb2.NodeStatus(id=peer, address=address, healthy=False, error=err.code().name)

    @guarded
    async def ListMembers(self, request: admin_pb2.ListMembersRequest, context: Context) -> Any:
        return self._members()

    def _members(self) -> admin_pb2.ListMembersResponse:
        conf = self.node.driver.core.conf
        addr = self.node.addresses
        return admin_pb2.ListMembersResponse(
            voters=[raft_pb2.Member(id=v, address=addr.get(v, "")) for v in sorted(conf.voters)],
            learners=[raft_pb2.Member(id=v, address=addr.get(v, "")) for v in sorted(conf.learners)],
        )

    @guarded
    async def TransferLeader(self, request: admin_pb2.TransferLeaderRequest, context: Context) -> Any:
        node = self.node
        if not node.is_leader:
            if was_forwarded(context):
                raise ApiError(grpc.StatusCode.UNAVAILABLE, "leadership moved while forwarding; retry")
            return await call_leader(node.forwarder, node.leader_address(), admin_pb2_grpc.AdminStub,
                                     "TransferLeader", request, 15.0)
        target = request.target or self._most_caught_up()
        if target not in node.driver.core.conf.voters:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"target: {quote(target)} is not a voting member")
        if target == node.id:
            return admin_pb2.TransferLeaderResponse(leader=node.id)
        node.driver.core.transfer_leader(target)
        node.driver.wake()
        return admin_pb2.TransferLeaderResponse(leader=await self._await_leader(target))

    def _most_caught_up(self) -> str:
        status = self.node.driver.core.status()
        followers = [(m[0], p) for p, m in status.progress.items() if p != self.node.id and p in status.config.voters]
        if not followers:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, "no other voting member to hand leadership to")
        return max(followers)[1]

    async def _await_leader(self, target: str) -> str:
        """Wait for the transfer to finish: the target leads, or the attempt times out."""
        core = self.node.driver.core
        deadline = time.monotonic() + 2 * self.node.config.election_ms / 1000 + 1
        while time.monotonic() < deadline:
            if core.leader == target:
                return target
            if core.role is Role.LEADER and not core.transferee:
                break  # the transfer was abandoned and we lead again
            await asyncio.sleep(0.01)
        raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED, f"leadership transfer to {target} did not finish in time")

    @guarded
    async def ReadLog(self, request: admin_pb2.ReadLogRequest, context: Context) -> Any:
        core = self.node.driver.core
        first = core.log.first_index()
        start = max(request.from_index, first)
        limit = min(request.limit or 1000, READ_LOG_LIMIT)
        end = min(core.commit + 1, start + limit)
        entries = core.log.entries(start, None, end) if end > start else []
        response = admin_pb2.ReadLogResponse(commit_index=core.commit, first_index=first)
        convert.entries_to_pb(entries, response.entries)
        return response

    # --- alarms and the corruption check (SPEC §6 promise 15) ---

    @guarded
    async def ListAlarms(self, request: admin_pb2.ListAlarmsRequest, context: Context) -> Any:
        """Every active alarm of the cluster (replicated state; read on the leader unless stale)."""
        if not request.stale:
            forwarded = await self._on_leader("ListAlarms", request, context)
            if forwarded is not None:
                return forwarded
            await self.node.driver.read_barrier()
        return admin_pb2.ListAlarmsResponse(alarms=self.node.sm.alarms())

    @guarded
    async def StateHash(self, request: admin_pb2.StateHashRequest, context: Context) -> Any:
        """This node's digest of its stored state at corruption check `check_id` (node to node)."""
        found = self.node.hasher.get(request.check_id)
        if found is None:  # not applied yet; or before a restart, and then this node is past it for good
            return admin_pb2.StateHashResponse(ready=False, node=self.node.id, applied_index=self.node.sm.applied_index)
        if found.digest is None:  # still hashing: a digest is coming, whatever has been applied since
            return admin_pb2.StateHashResponse(ready=False, node=self.node.id, applied_index=found.index)
        return admin_pb2.StateHashResponse(ready=True, index=found.index, digest=found.digest, node=self.node.id)

    # --- membership (single-server changes, thesis §4.1) ---

    async def _on_leader(self, method: str, request: Any, context: Context) -> Any | None:
        if self.node.is_leader:
            return None
        if was_forwarded(context):
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "leadership moved while forwarding; retry")
        return await call_leader(self.node.forwarder, self.node.leader_address(), admin_pb2_grpc.AdminStub,
                                 method, request, 60.0, context)

    @guarded
    async def AddMember(self, request: admin_pb2.AddMemberRequest, context: Context) -> Any:
        if not MEMBER_ID_RE.fullmatch(request.id):
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"id: {quote(request.id)} must be 1-64 characters of [A-Za-z0-9_-] (as `node --id`)")
        if not _valid_address(request.address):
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"address: {quote(request.address)} must be HOST:PORT "
                           f"(at most {MAX_ADDRESS_CHARS} characters)")
        forwarded = await self._on_leader("AddMember", request, context)
        if forwarded is not None:
            return forwarded
        await self._change(ConfigChange(ChangeKind.ADD_LEARNER, request.id, request.address))
        if not request.learner:
            await self._wait_caught_up(request.id)
            await self._change(ConfigChange(ChangeKind.PROMOTE, request.id))
        return self._members()

    @guarded
    async def PromoteMember(self, request: admin_pb2.PromoteMemberRequest, context: Context) -> Any:
        forwarded = await self._on_leader("PromoteMember", request, context)
        if forwarded is not None:
            return forwarded
        if request.id not in self.node.driver.core.conf.learners:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"{quote(request.id)} is not a learner")
        await self._wait_caught_up(request.id)
        await self._change(ConfigChange(ChangeKind.PROMOTE, request.id))
        return self._members()

    @guarded
    async def RemoveMember(self, request: admin_pb2.RemoveMemberRequest, context: Context) -> Any:
        forwarded = await self._on_leader("RemoveMember", request, context)
        if forwarded is not None:
            return forwarded
        await self._change(ConfigChange(ChangeKind.REMOVE, request.id))
        return self._members()

    async def _change(self, change: ConfigChange) -> None:
        """Propose one change and wait until it is committed and applied here."""
        try:
            apply_change(self.node.driver.core.conf, change)
        except InvalidChangeError as err:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, str(err)) from None
        index, term = self.node.driver.propose_config(change)
        await self.node.driver.wait_applied(index, timeout=20.0)
        if self.node.driver.core.log.term_or_zero(index) != term:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "the membership change was lost in a leader change; retry")

    async def _wait_caught_up(self, member: str, timeout: float = 30.0) -> None:
        """A learner is promoted only once its log has reached the commit index at request time."""
        core = self.node.driver.core
        target = core.commit
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if core.role is not Role.LEADER:
                raise ApiError(grpc.StatusCode.UNAVAILABLE, "lost leadership while waiting; retry")
            progress = core.progress.get(member)
            if progress is not None and progress.match >= target:
                return
            await asyncio.sleep(0.05)
        raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED,
                       f"{member} has not caught up within {timeout:.0f} s (is it running? see `raftsched status`)")

    # --- backups ---

    async def SaveSnapshot(self, request: admin_pb2.SaveSnapshotRequest, context: Context) -> Any:
        """Stream a backup file: a snapshot taken on the leader after a ReadIndex barrier, so it
        holds every write acknowledged before the call."""
        node = self.node
        if not node.is_leader:
            async for chunk in self._save_from_leader(request, context):
                yield chunk
            return
        try:
            await node.driver.read_barrier()
            meta, snapshot = await node.make_snapshot()
        except Exception as err:
            code, message = status_of(err)
            await context.abort(code, message)
        header = BackupHeader(
            cluster_id=node.cluster_id(),
            node=node.id,
            index=meta.index,
            term=meta.term,
            created_ms=int(time.time() * 1000),
            voters=sorted(meta.config.voters),
            learners=sorted(meta.config.learners),
            addresses=dict(node.addresses),
        )
        backup = node.snapshots.directory / f"backup-{snapshot.path.stem}-{id(context)}.rss"
        try:
            # A copy with the backup's header: the snapshot itself may be streaming to a follower.
            await asyncio.to_thread(shutil.copyfile, snapshot.path, backup)
            await asyncio.to_thread(bundle.rewrite_info, backup, header_info(header))
            with open(backup, "rb") as f:
                while chunk := f.read(BACKUP_CHUNK):
                    yield admin_pb2.SnapshotChunk(data=chunk)
        finally:
            backup.unlink(missing_ok=True)

    async def _save_from_leader(self, request: Any, context: Context) -> Any:
        leader = self.node.leader_address()
        if not leader or was_forwarded(context):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no leader to take the backup from; retry")
        stub = admin_pb2_grpc.AdminStub(self.node.forwarder.channel(leader))
        try:
            async for chunk in stub.SaveSnapshot(request, metadata=forwarded_metadata(), timeout=300):
                yield chunk
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), err.details() or "backup failed on the leader")


def _valid_address(address: str) -> bool:
    if len(address) > MAX_ADDRESS_CHARS:
        return False
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536

"""Operators' API (SPEC §4 Admin): cluster status, membership, leadership transfer, backups, and a
debug read of the committed log used by the chaos checker."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from typing import Any, TypeAlias

import grpc

from raftsched.api.errors import ApiError, code_from_int, guarded, status_of
from raftsched.api.forward import call_leader, forwarded_metadata, was_forwarded
from raftsched.quoting import quote
from raftsched.raft.config import ChangeKind, ConfigChange, InvalidChangeError, apply_change
from raftsched.raft.messages import Role
from raftsched.seams import Backups, ClusterControl, LocalNode, Proposer, StateReader
from raftsched.state import notify
from raftsched.storage import bundle
from raftsched.storage.backup import BackupHeader, header_info
from raftsched.transport import convert
from raftsched.v1 import admin_pb2, admin_pb2_grpc, commands_pb2, notify_pb2, raft_pb2

MEMBER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as raftsched.config.check_id
MAX_ADDRESS_CHARS = 255
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
PEER_STATUS_TIMEOUT = 1.0
READ_LOG_LIMIT = 10_000
BACKUP_CHUNK = 1 << 20


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, *, node: LocalNode, cluster: ClusterControl, proposer: Proposer, state: StateReader,
                 backups: Backups, election_ms: int) -> None:
        self.node = node
        self.cluster = cluster
        self.proposer = proposer
        self.state = state
        self.backups = backups
        self.election_ms = election_ms

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
        conf = self.cluster.conf
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
        if target not in self.cluster.conf.voters:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"target: {quote(target)} is not a voting member")
        if target == node.id:
            return admin_pb2.TransferLeaderResponse(leader=node.id)
        self.cluster.transfer_leader(target)
        return admin_pb2.TransferLeaderResponse(leader=await self._await_leader(target))

    def _most_caught_up(self) -> str:
        status = self.cluster.status()
        followers = [(m[0], p) for p, m in status.progress.items() if p != self.node.id and p in status.config.voters]
        if not followers:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, "no other voting member to hand leadership to")
        return max(followers)[1]

    async def _await_leader(self, target: str) -> str:
        """Wait for the transfer to finish: the target leads, or the attempt times out."""
        deadline = time.monotonic() + 2 * self.election_ms / 1000 + 1
        while time.monotonic() < deadline:
            st = self.cluster.status()
            if st.leader == target:
                return target
            if st.role is Role.LEADER and not st.transferring_to:
                break  # the transfer was abandoned and we lead again
            await asyncio.sleep(0.01)
        raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED, f"leadership transfer to {target} did not finish in time")

    @guarded
    async def ReadLog(self, request: admin_pb2.ReadLogRequest, context: Context) -> Any:
        limit = min(request.limit or 1000, READ_LOG_LIMIT)
        first, commit, entries = self.cluster.committed_entries(request.from_index, limit)
        response = admin_pb2.ReadLogResponse(commit_index=commit, first_index=first)
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
            await self.proposer.read_barrier()
        return admin_pb2.ListAlarmsResponse(alarms=self.state.alarms())

    @guarded
    async def StateHash(self, request: admin_pb2.StateHashRequest, context: Context) -> Any:
        """This node's digest of its stored state at corruption check `check_id` (node to node)."""
        found = self.backups.local_hash(request.check_id)
        if found is not None:
            index, digest = found
            return admin_pb2.StateHashResponse(ready=True, index=index, digest=digest, node=self.node.id)
        hashing = self.backups.hashing_at(request.check_id)
        if hashing is not None:  # still hashing: a digest is coming, whatever has been applied since
            return admin_pb2.StateHashResponse(ready=False, node=self.node.id, applied_index=hashing)
        # not applied yet; or before a restart, and then this node is past it for good
        return admin_pb2.StateHashResponse(ready=False, node=self.node.id, applied_index=self.state.applied_index)

    # --- notification sinks (SPEC §10) ---

    @guarded
    async def AddNotifySink(self, request: admin_pb2.AddNotifySinkRequest, context: Context) -> Any:
        sink = notify_pb2.NotifySink(name=request.name, url=request.url, secret=request.secret, events=request.events)
        notify.validate_sink(sink)
        forwarded = await self._on_leader("AddNotifySink", request, context)
        if forwarded is not None:
            return forwarded
        if self.state.notify_sink(request.name) is not None:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS,
                           f"name: a sink named {request.name!r} exists (remove it first)")
        cmd = commands_pb2.Command(notify_add=commands_pb2.NotifyAddCmd(sink=sink))
        self._check_applied(await self.proposer.propose(cmd))
        added = self.state.notify_sink(request.name)
        if added is None:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "the sink was removed meanwhile; retry")
        return notify.public(added)

    @guarded
    async def ListNotifySinks(self, request: admin_pb2.ListNotifySinksRequest, context: Context) -> Any:
        if not request.stale:
            forwarded = await self._on_leader("ListNotifySinks", request, context)
            if forwarded is not None:
                return forwarded
            await self.proposer.read_barrier()
        return admin_pb2.ListNotifySinksResponse(sinks=[notify.public(s) for s in self.state.notify_sinks()])

    @guarded
    async def RemoveNotifySink(self, request: admin_pb2.RemoveNotifySinkRequest, context: Context) -> Any:
        forwarded = await self._on_leader("RemoveNotifySink", request, context)
        if forwarded is not None:
            return forwarded
        self._existing_sink(request.name)
        cmd = commands_pb2.Command(notify_remove=commands_pb2.NotifyRemoveCmd(name=request.name))
        self._check_applied(await self.proposer.propose(cmd))
        return admin_pb2.RemoveNotifySinkResponse()

    @guarded
    async def TestNotifySink(self, request: admin_pb2.TestNotifySinkRequest, context: Context) -> Any:
        forwarded = await self._on_leader("TestNotifySink", request, context)
        if forwarded is not None:
            return forwarded
        self._existing_sink(request.name)
        cmd = commands_pb2.Command(notify_test=commands_pb2.NotifyTestCmd(name=request.name))
        result = await self.proposer.propose(cmd)
        self._check_applied(result)
        return admin_pb2.TestNotifySinkResponse(event_id=result.event_id)

    def _existing_sink(self, name: str) -> None:
        if self.state.notify_sink(name) is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"no sink named {name[:64]!r}")

    @staticmethod
    def _check_applied(result: commands_pb2.ApplyResult) -> None:
        if result.error:
            raise ApiError(code_from_int(result.code), result.error)

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
        if request.id not in self.cluster.conf.learners:
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
            apply_change(self.cluster.conf, change)
        except InvalidChangeError as err:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, str(err)) from None
        index, term = self.cluster.propose_config(change)
        await self.cluster.wait_applied(index, timeout=20.0)
        if self.cluster.term_at(index) != term:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "the membership change was lost in a leader change; retry")

    async def _wait_caught_up(self, member: str, timeout: float = 30.0) -> None:
        """A learner is promoted only once its log has reached the commit index at request time."""
        target = self.cluster.status().commit
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.cluster.is_leader:
                raise ApiError(grpc.StatusCode.UNAVAILABLE, "lost leadership while waiting; retry")
            match = self.cluster.match_index(member)
            if match is not None and match >= target:
                return
            await asyncio.sleep(0.05)
        raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED,
                       f"{member} has not caught up within {timeout:.0f} s (is it running? see `raftsched status`)")

    # --- backups ---

    async def SaveSnapshot(self, request: admin_pb2.SaveSnapshotRequest, context: Context) -> Any:
        """Stream a backup file: a snapshot taken on the leader after a ReadIndex barrier, so it
        holds every write acknowledged before the call."""
        node, backups = self.node, self.backups
        if not node.is_leader:
            async for chunk in self._save_from_leader(request, context):
                yield chunk
            return
        try:
            await self.proposer.read_barrier()
            meta, snapshot = await backups.make_snapshot()
        except Exception as err:
            code, message = status_of(err)
            await context.abort(code, message)
        header = BackupHeader(
            cluster_id=backups.cluster_id(),
            node=node.id,
            index=meta.index,
            term=meta.term,
            created_ms=int(time.time() * 1000),
            voters=sorted(meta.config.voters),
            learners=sorted(meta.config.learners),
            addresses=dict(node.addresses),
        )
        backup = backups.snapshots.directory / f"backup-{snapshot.path.stem}-{id(context)}.rss"
        completed = False
        try:
            # A copy with the backup's header: the snapshot itself may be streaming to a follower.
            await asyncio.to_thread(shutil.copyfile, snapshot.path, backup)
            await asyncio.to_thread(bundle.rewrite_info, backup, header_info(header))
            with open(backup, "rb") as f:
                while chunk := f.read(BACKUP_CHUNK):
                    yield admin_pb2.SnapshotChunk(data=chunk)
            completed = True  # the last chunk was taken by gRPC (raftsched_last_backup_timestamp_seconds)
        finally:
            backup.unlink(missing_ok=True)
            backups.backup_finished(completed=completed)

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

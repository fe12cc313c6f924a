"""The Raft gRPC service, peer channels and protobuf conversion. Decides nothing about terms or
votes: it moves the core's messages between nodes and reports peers it cannot reach."""

from raftsched.transport.options import channel_options, server_options
from raftsched.transport.peers import RaftTransport
from raftsched.transport.service import RaftServicer

__all__ = ["RaftServicer", "RaftTransport", "channel_options", "server_options"]

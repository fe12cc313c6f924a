"""Membership changes as log entries: one server at a time, effective when appended (thesis §4.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from raftsched.quoting import quote
from raftsched.raft.messages import ConfigState


class ChangeKind(Enum):
    ADD_LEARNER = "add_learner"
    PROMOTE = "promote"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class ConfigChange:
    kind: ChangeKind
    node: str
    address: str = ""  # carried for the driver's transport; the core only uses ids


class InvalidChangeError(ValueError):
    """The change does not apply to the current configuration."""


def encode_change(change: ConfigChange) -> bytes:
    raw = {"v": 1, "kind": change.kind.value, "node": change.node, "address": change.address}
    return json.dumps(raw).encode()


def decode_change(data: bytes) -> ConfigChange:
    raw = json.loads(data)
    if raw.get("v") != 1:
        raise InvalidChangeError(f"unknown config change version {quote(raw.get('v'))}")
    return ConfigChange(ChangeKind(raw["kind"]), str(raw["node"]), str(raw.get("address", "")))


def apply_change(conf: ConfigState, change: ConfigChange) -> ConfigState:
    """The configuration after `change`; raises InvalidChangeError when it cannot apply."""
    node = change.node
    if change.kind is ChangeKind.ADD_LEARNER:
        if node in conf.members():
            raise InvalidChangeError(f"{quote(node)} is already a member")
        return ConfigState(conf.voters, conf.learners | {node})
    if change.kind is ChangeKind.PROMOTE:
        if node not in conf.learners:
            raise InvalidChangeError(f"{quote(node)} is not a learner")
        return ConfigState(conf.voters | {node}, conf.learners - {node})
    if node not in conf.members():
        raise InvalidChangeError(f"{quote(node)} is not a member")
    if conf.voters == {node}:
        raise InvalidChangeError(f"{quote(node)} is the last voter")
    return ConfigState(conf.voters - {node}, conf.learners - {node})

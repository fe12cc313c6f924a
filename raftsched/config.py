"""Configuration of every process, as frozen dataclasses validated once at start.

Values come from flags, a TOML file (`--config`) and `RAFTSCHED_*` environment variables; flags
win over the environment, which wins over the file. Loading lives in this module too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_CLUSTER = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the setting."""


@dataclass(frozen=True, slots=True)
class TLSConfig:
    cert: str = ""
    key: str = ""
    ca: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert or self.key or self.ca)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    id: str
    listen: str
    data_dir: str
    peers: dict[str, str] = field(default_factory=dict)  # id -> address, this node included
    join: str = ""  # address of a running member, instead of peers
    tick_ms: int = 10
    heartbeat_ms: int = 100
    election_ms: int = 1000  # randomized in [election_ms, 2 * election_ms)
    executor_timeout_ms: int = 5000
    lease_ms: int = 3000  # granted to executors by acknowledged heartbeats
    kill_grace_ms: int = 1000
    max_inflight: int = 64
    max_message_bytes: int = 16 << 20
    max_pending_proposals: int = 10_000
    snapshot_entries: int = 50_000
    snapshot_bytes: int = 64 << 20
    snapshot_keep_tail: int = 5_000
    force_new_cluster: bool = False
    metrics_listen: str = ""
    log_format: str = "text"  # text | json
    log_level: str = "info"
    tls: TLSConfig = field(default_factory=TLSConfig)


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    id: str
    cluster: tuple[str, ...]
    slots: int = 4
    labels: dict[str, str] = field(default_factory=dict)
    heartbeat_ms: int = 1000
    lease_ms: int = 3000  # the executor's own view; the leader's grant wins when shorter
    kill_grace_ms: int = 1000
    output_tail_bytes: int = 4096
    log_level: str = "info"
    tls: TLSConfig = field(default_factory=TLSConfig)

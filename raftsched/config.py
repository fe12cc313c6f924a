"""Configuration of every process, as frozen dataclasses validated once at start.

Values come from flags, a TOML file (`--config`) and `RAFTSCHED_*` environment variables; flags
win over the environment, which wins over the file. Loading lives in this module too.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from raftsched.quoting import quote

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
    advertise: str = ""  # where the other members reach this node when it adds itself; default listen
    tick_ms: int = 10
    heartbeat_ms: int = 100
    election_ms: int = 1000  # randomized in [election_ms, 2 * election_ms)
    executor_timeout_ms: int = 5000
    lease_ms: int = 3000  # granted to executors by acknowledged heartbeats
    kill_grace_ms: int = 1000
    max_inflight: int = 64
    max_message_bytes: int = 16 << 20
    max_append_bytes: int = 1 << 20  # log entries per append message (at least one is always sent)
    max_pending_proposals: int = 10_000
    snapshot_entries: int = 50_000
    snapshot_bytes: int = 64 << 20
    snapshot_keep_tail: int = 5_000
    force_new_cluster: bool = False
    metrics_listen: str = ""
    log_format: str = "text"  # text | json
    log_level: str = "info"
    tls: TLSConfig = field(default_factory=TLSConfig)
    tokens_file: str = ""  # accepted bearer tokens (raftsched.security.tokens); needs TLS
    job_retention: int = 7 * 86_400_000  # ms a finished job is kept; 0 keeps them forever
    idempotency_window: int = 86_400_000  # ms an idempotency key is remembered; 0 while its job lives
    corrupt_check_interval: int = 300_000  # ms between the leader's replica comparisons; 0: never
    rebuild_from_peers: bool = False  # wipe this node's data and rejoin by InstallSnapshot
    insecure: bool = False  # allow listening beyond loopback without TLS
    cluster_name: str = "raftsched"  # the "cluster" of every notification event (SPEC §10)
    notify_retry_initial: int = 1000  # ms before the first retry of a failed webhook delivery
    notify_retry_max: int = 300_000  # ms: the longest wait between two retries
    notify_retry_horizon: int = 24 * 3_600_000  # ms an event is retried before it is given up
    notify_timeout: int = 10_000  # ms one webhook request may take, connect included
    # Containment (promise 14). 0 turns a rule off.
    quarantine_after: int = 5  # failures in a row on one executor, while another succeeds
    quarantine_cooloff: int = 60_000  # ms of the first quarantine; doubles on each repeat
    quarantine_max: int = 3_600_000  # ms: the longest cool-off
    poison_after: int = 2  # distinct executors lost while running one job
    retry_rate: int = 50  # retries dispatched per second, cluster-wide
    retry_burst: int = 100  # retries dispatched at once after a quiet spell


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
    drain_ack_timeout_ms: int = 10_000  # on drain, how long to wait for the last results to be acked
    guard_tasks: bool = True  # a guard process per command task kills it if this executor freezes
    token_file: str = ""  # this executor's own bearer token (first line of the file); needs TLS
    insecure: bool = False  # allow talking to a cluster beyond loopback without TLS


# ---------------------------------------------------------------------------------------------
# Loading: flags > RAFTSCHED_* environment > TOML file (--config) > defaults, validated once.
# ---------------------------------------------------------------------------------------------

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9_./-]{1,63}$")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
MAX_SLOTS = 1024

Kind = Literal["int", "str", "bool", "peers", "labels", "addresses", "duration"]
ArgsLike = argparse.Namespace | Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Setting:
    """One configurable value: its field name is also its TOML key, flag and environment name."""

    name: str
    kind: Kind
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "RAFTSCHED_" + self.name.upper()


_TLS_SETTINGS = (
    Setting("tls_dir", "str", "directory holding ca.crt and <role>.crt/.key"),
    Setting("tls_cert", "str", "certificate file (PEM)"),
    Setting("tls_key", "str", "private key file (PEM)"),
    Setting("tls_ca", "str", "CA certificate file (PEM)"),
)

NODE_SETTINGS: tuple[Setting, ...] = (
    Setting("id", "str", "this node's id ([A-Za-z0-9_-])"),
    Setting("listen", "str", "host:port to serve on (default: this node's address in --peers)"),
    Setting("data_dir", "str", "RocksDB directory of this node"),
    Setting("peers", "peers", "initial members: ID=HOST:PORT,... including this node"),
    Setting("join", "str", "address of a running member to join instead of --peers"),
    Setting("advertise", "str", "host:port the other members reach this node at, when it re-adds itself "
            "(--rebuild-from-peers; default: listen)"),
    Setting("tick_ms", "int", "length of one Raft tick"),
    Setting("heartbeat_ms", "int", "leader heartbeat interval"),
    Setting("election_ms", "int", "election timeout (randomized up to twice this)"),
    Setting("executor_timeout_ms", "int", "silence after which an executor is declared down"),
    Setting("lease_ms", "int", "executor lease granted by an acknowledged heartbeat"),
    Setting("kill_grace_ms", "int", "time an executor gives a task between SIGTERM and SIGKILL"),
    Setting("max_inflight", "int", "append messages in flight per follower"),
    Setting("max_message_bytes", "int", "largest gRPC message"),
    Setting("max_append_bytes", "int", "log entries per append message to a follower, in bytes (one entry at least)"),
    Setting("max_pending_proposals", "int", "proposals waiting for commit before refusing more"),
    Setting("snapshot_entries", "int", "applied entries between snapshots"),
    Setting("snapshot_bytes", "int", "log bytes between snapshots"),
    Setting("snapshot_keep_tail", "int", "entries kept behind a snapshot for slow followers"),
    Setting("force_new_cluster", "bool", "start a one-node cluster from this data (disaster recovery)"),
    Setting("metrics_listen", "str", "host:port for the Prometheus /metrics endpoint"),
    Setting("log_format", "str", "text or json"),
    Setting("log_level", "str", "debug, info, warning or error"),
    *_TLS_SETTINGS,
    Setting("tokens_file", "str", "TOML file of accepted bearer tokens ([tokens] token = role); needs TLS"),
    Setting("job_retention", "duration", "how long finished jobs are kept (7d, 12h; 0 = forever)"),
    Setting("idempotency_window", "duration", "how long idempotency keys are kept (24h; 0 = while the job lives)"),
    Setting("corrupt_check_interval", "duration", "how often the leader compares the replicas' state (5m; 0 = never)"),
    Setting("rebuild_from_peers", "bool", "wipe this node's data and rejoin from the cluster (after a CORRUPT alarm)"),
    Setting("insecure", "bool", "allow listening beyond loopback without TLS (see docs/security.md)"),
    Setting("cluster_name", "str", "the cluster's name in notification events (default raftsched)"),
    Setting("notify_retry_initial", "duration", "first wait before a failed webhook delivery is retried (1s)"),
    Setting("notify_retry_max", "duration", "longest wait between webhook retries (5m)"),
    Setting("notify_retry_horizon", "duration", "how long an event is retried before it is given up (24h; >= 1h)"),
    Setting("notify_timeout", "duration", "how long one webhook request may take (10s)"),
    Setting("quarantine_after", "int",
            "failures in a row on one executor, while another succeeds, that quarantine it (5; 0 = never)"),
    Setting("quarantine_cooloff", "duration", "how long a quarantined executor gets no work; doubles on repeat (1m)"),
    Setting("quarantine_max", "duration", "the longest quarantine cool-off (1h)"),
    Setting("poison_after", "int", "a job lost with this many distinct executors ends FAILED as poison (2; 0 = never)"),
    Setting("retry_rate", "int", "retries dispatched per second, cluster-wide (50; 0 = no limit)"),
    Setting("retry_burst", "int", "retries dispatched at once after a quiet spell (100)"),
)

EXECUTOR_SETTINGS: tuple[Setting, ...] = (
    Setting("id", "str", "this executor's id ([A-Za-z0-9_-])"),
    Setting("cluster", "addresses", "scheduler node addresses HOST:PORT,..."),
    Setting("slots", "int", "tasks run at once (1..1024)"),
    Setting("labels", "labels", "labels k=v a job may require (repeatable)"),
    Setting("heartbeat_ms", "int", "heartbeat interval"),
    Setting("lease_ms", "int", "lease this executor assumes (the leader's grant wins when shorter)"),
    Setting("kill_grace_ms", "int", "time between SIGTERM and SIGKILL of a task"),
    Setting("output_tail_bytes", "int", "bytes of task output reported back"),
    Setting("log_level", "str", "debug, info, warning or error"),
    *_TLS_SETTINGS,
    Setting("token_file", "str", "file holding this executor's bearer token (instead of its certificate's role)"),
    Setting("insecure", "bool", "allow a cluster beyond loopback without TLS (see docs/security.md)"),
)

# The environment variable that names a TOML file, next to the --config flag.
CONFIG_ENV = "RAFTSCHED_CONFIG"


def load_node_config(args: ArgsLike, env: Mapping[str, str] | None = None) -> NodeConfig:
    """Build and validate a NodeConfig; raises ConfigError naming the offending setting."""
    values = _collect(NODE_SETTINGS, args, os.environ if env is None else env)
    tls = _tls_from_values(values, role=_node_cert_stem(values))
    fields = {k: v for k, v in values.items() if not k.startswith("tls_")}
    _require(fields, "id", "data_dir")
    peers = fields.get("peers", {})
    assert isinstance(peers, dict)
    if "listen" not in fields and fields["id"] in peers:
        # Why: the node's own entry in --peers already says where it serves.
        fields["listen"] = peers[fields["id"]]
    _require(fields, "listen")
    config = NodeConfig(**fields, tls=tls)  # type: ignore[arg-type]
    validate_node_config(config, has_state=_has_state(config.data_dir))
    return config


def load_executor_config(args: ArgsLike, env: Mapping[str, str] | None = None) -> ExecutorConfig:
    """Build and validate an ExecutorConfig; raises ConfigError naming the offending setting."""
    values = _collect(EXECUTOR_SETTINGS, args, os.environ if env is None else env)
    values.setdefault("cluster", parse_addresses(DEFAULT_CLUSTER, "cluster"))
    tls = _tls_from_values(values, role="executor")
    fields = {k: v for k, v in values.items() if not k.startswith("tls_")}
    _require(fields, "id")
    config = ExecutorConfig(**fields, tls=tls)  # type: ignore[arg-type]
    validate_executor_config(config)
    return config


# --- gathering values from the three sources ---------------------------------------------------


def _collect(settings: Sequence[Setting], args: ArgsLike, env: Mapping[str, str]) -> dict[str, object]:
    """Converted values by setting name, each from the strongest source that has it."""
    given = _arg_values(args)
    path = given.get("config") or env.get(CONFIG_ENV) or ""
    from_file = _read_toml(str(path), settings) if path else {}
    out: dict[str, object] = {}
    for setting in settings:
        if given.get(setting.name) is not None:
            out[setting.name] = convert(setting, given[setting.name], setting.flag)
        elif setting.env in env:
            out[setting.name] = convert(setting, env[setting.env], setting.env)
        elif setting.name in from_file:
            out[setting.name] = convert(setting, from_file[setting.name], f"{setting.name} in {path}")
    return out


def _arg_values(args: ArgsLike) -> dict[str, object]:
    raw = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    return {k: v for k, v in raw.items() if v is not None}


def _read_toml(path: str, settings: Sequence[Setting]) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from e
    known = {s.name for s in settings}
    for key in data:
        if key not in known:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
    return data


def _require(fields: Mapping[str, object], *names: str) -> None:
    for name in names:
        if not fields.get(name):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{name} is required ({flag} or RAFTSCHED_{name.upper()})")


def _has_state(data_dir: str) -> bool:
    """Whether data_dir already holds a node's data (then membership comes from the log)."""
    try:
        with os.scandir(data_dir) as it:
            return any(True for _ in it)
    except OSError:
        return False


# --- converting one raw value ----------------------------------------------------------------


def convert(setting: Setting, raw: object, source: str) -> object:
    """Turn a flag string, environment string or TOML value into the setting's type."""
    try:
        return _CONVERTERS[setting.kind](raw, setting.name)
    except ConfigError as e:
        raise ConfigError(f"{e} (from {source})") from e


def _to_int(raw: object, name: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip().replace("_", ""))
        except ValueError:
            pass
    raise ConfigError(f"{name} must be an integer, got {raw!r}")


def _to_str(raw: object, name: str) -> str:
    if isinstance(raw, str):
        return raw.strip()
    raise ConfigError(f"{name} must be a string, got {raw!r}")


def _to_bool(raw: object, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _pairs(raw: object, name: str) -> list[tuple[str, str]]:
    """k=v pairs from a TOML table, a list of 'k=v' strings or one comma-separated string."""
    if isinstance(raw, Mapping):
        return [(str(k), str(v)) for k, v in raw.items()]
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{name} must be k=v pairs, got {raw!r}")
    out: list[tuple[str, str]] = []
    for item in items:
        for part in str(item).split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{name} entry {part.strip()!r} is not k=v")
            out.append((key.strip(), value.strip()))
    return out


def parse_peers(raw: object, name: str = "peers") -> dict[str, str]:
    peers: dict[str, str] = {}
    for node_id, address in _pairs(raw, name):
        check_id(node_id, f"{name} id")
        check_address(address, f"{name} address of {node_id}")
        if node_id in peers:
            raise ConfigError(f"{name} names {node_id!r} twice")
        peers[node_id] = address
    return peers


def parse_labels(raw: object, name: str = "labels") -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, value in _pairs(raw, name):
        if not _LABEL_KEY_RE.match(key):
            raise ConfigError(f"{name} key {key!r} must be 1-63 of [A-Za-z0-9_./-]")
        labels[key] = value
    return labels


def parse_addresses(raw: object, name: str = "cluster") -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{name} must be HOST:PORT,..., got {raw!r}")
    out = tuple(str(a).strip() for a in items if str(a).strip())
    if not out:
        raise ConfigError(f"{name} needs at least one HOST:PORT address")
    for address in out:
        check_address(address, name)
    return out


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_DURATION_MS = 100 * 365 * 86_400_000


def parse_duration_ms(raw: object, name: str = "duration") -> int:
    """'500ms', '10s', '2m', '1h30m', '7d', '1.5s' to milliseconds; a plain number counts seconds.

    Why seconds: `--timeout 120` and `--every 5` read as seconds to people and to the scripts
    that drive the CLI (like the coreutils `timeout` and `sleep`); write `120ms` for ms.
    """
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = str(raw)
    elif isinstance(raw, str):
        value = raw.strip().lower()
    else:
        raise ConfigError(f"{name}: {raw!r} is not a duration (examples: 500ms, 10s, 2m, 1h30m, 7d)")
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        ms = round(float(value) * 1000)
    elif not value or _DURATION_PART.sub("", value):
        raise ConfigError(f"{name}: {raw!r} is not a duration (examples: 500ms, 10s, 2m, 1h30m, 7d)")
    else:
        ms = round(sum(float(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(value)))
    if ms > MAX_DURATION_MS:
        raise ConfigError(f"{name}: {raw!r} is longer than 100 years")
    return ms


def format_duration_ms(ms: int) -> str:
    """The shortest exact spelling parse_duration_ms reads back: 604800000 -> '7d', 0 -> '0'."""
    if ms == 0:
        return "0"
    for unit in ("d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


_CONVERTERS: dict[str, Callable[[object, str], object]] = {
    "duration": parse_duration_ms,
    "int": _to_int,
    "str": _to_str,
    "bool": _to_bool,
    "peers": parse_peers,
    "labels": parse_labels,
    "addresses": parse_addresses,
}


# --- validation ------------------------------------------------------------------------------


def check_id(value: str, name: str = "id") -> None:
    if not _ID_RE.match(value):
        raise ConfigError(f"{name} {quote(value)} must be 1-64 characters of [A-Za-z0-9_-]")


def check_address(value: str, name: str) -> tuple[str, int]:
    """Split HOST:PORT (or [V6]:PORT); raise ConfigError naming the setting when malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{name} {value!r} must be HOST:PORT")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} {value!r} has port {port}, want 1..65535")
    return host.strip("[]"), port


def is_loopback(address: str) -> bool:
    """HOST:PORT whose host is this machine only (127.0.0.0/8, ::1, localhost); a wildcard is not."""
    host = address.rpartition(":")[0].strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere


def _at_least(name: str, value: int, minimum: int, unit: str = "") -> None:
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}{unit}, got {value}")


def validate_node_config(config: NodeConfig, *, has_state: bool = False) -> None:
    """Check every rule that spans fields; has_state: the data dir already holds a node."""
    check_id(config.id)
    check_address(config.listen, "listen")
    if config.advertise:
        check_address(config.advertise, "advertise")
    if config.metrics_listen:
        check_address(config.metrics_listen, "metrics_listen")
    _check_membership(config, has_state)
    _check_node_timing(config)
    for name in ("max_inflight", "max_message_bytes", "max_append_bytes", "max_pending_proposals", "snapshot_entries",
                 "snapshot_bytes"):
        _at_least(name, getattr(config, name), 1)
    _at_least("snapshot_keep_tail", config.snapshot_keep_tail, 0)
    _check_choice("log_format", config.log_format, LOG_FORMATS)
    _check_choice("log_level", config.log_level, LOG_LEVELS)
    _check_node_security(config)
    _check_notify(config)
    _check_containment(config)
    if not config.tls.enabled and not config.insecure and not is_loopback(config.listen):
        raise ConfigError(
            f"listen {config.listen!r} is not a loopback address and TLS is off: anyone who reaches it could "
            "call every service, Raft included. Give TLS (--tls-dir, see docs/security.md), listen on 127.0.0.1, "
            "or pass --insecure to accept that")


def _check_containment(config: NodeConfig) -> None:
    for name in ("quarantine_after", "poison_after", "retry_rate"):
        _at_least(name, getattr(config, name), 0)
    _at_least("quarantine_cooloff", config.quarantine_cooloff, 1000, " ms")
    if config.quarantine_max < config.quarantine_cooloff:
        raise ConfigError("quarantine_max must be at least quarantine_cooloff")
    _at_least("retry_burst", config.retry_burst, 1)


NOTIFY_MIN_HORIZON_MS = 3_600_000  # promise 13: a failed delivery is retried for at least an hour


def _check_notify(config: NodeConfig) -> None:
    if not _CLUSTER_NAME_RE.fullmatch(config.cluster_name):
        raise ConfigError("cluster_name: 1..64 characters of [A-Za-z0-9._-]")
    _at_least("notify_retry_initial", config.notify_retry_initial, 1)
    if config.notify_retry_max < config.notify_retry_initial:
        raise ConfigError("notify_retry_max must be at least notify_retry_initial")
    _at_least("notify_retry_horizon", config.notify_retry_horizon, NOTIFY_MIN_HORIZON_MS)
    _at_least("notify_timeout", config.notify_timeout, 1)


_CLUSTER_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _check_membership(config: NodeConfig, has_state: bool) -> None:
    if config.peers and config.join:
        raise ConfigError("give either peers (--peers, a new cluster) or join (--join ADDR), not both")
    if config.join:
        check_address(config.join, "join")
        return
    if not config.peers:
        if has_state or config.force_new_cluster:
            return  # Why: a restarted node reads its membership from its own log
        raise ConfigError("peers is required: --peers ID=HOST:PORT,... for a new cluster, or --join ADDR")
    if config.id not in config.peers:
        raise ConfigError(f"peers must include this node's id {config.id!r}")
    if not _same_endpoint(config.peers[config.id], config.listen):
        raise ConfigError(f"peers gives {config.id} the address {config.peers[config.id]!r} "
                          f"but listen is {config.listen!r}; they must match")


def _same_endpoint(peer_address: str, listen: str) -> bool:
    """Equal, or listen is a wildcard host on the same port (serving every interface)."""
    if peer_address == listen:
        return True
    host, port = check_address(listen, "listen")
    return host in ("0.0.0.0", "::", "") and port == check_address(peer_address, "peers")[1]


def _check_node_timing(config: NodeConfig) -> None:
    _at_least("tick_ms", config.tick_ms, 1, " ms")
    _at_least("heartbeat_ms", config.heartbeat_ms, 10, " ms")
    if config.heartbeat_ms % config.tick_ms:
        raise ConfigError(f"tick_ms ({config.tick_ms}) must divide heartbeat_ms ({config.heartbeat_ms})")
    if config.election_ms < 5 * config.heartbeat_ms:
        raise ConfigError(f"election_ms ({config.election_ms}) must be at least 5 * heartbeat_ms "
                          f"({5 * config.heartbeat_ms})")
    _at_least("lease_ms", config.lease_ms, 1, " ms")
    _at_least("kill_grace_ms", config.kill_grace_ms, 0, " ms")
    # Promise 9: a lapsed lease kills its tasks (grace included) before the leader may declare the
    # executor down and re-run them elsewhere; 500 ms of margin covers clock and scheduling skew.
    floor = config.lease_ms + config.kill_grace_ms + 500
    if config.executor_timeout_ms < floor:
        raise ConfigError(
            f"executor_timeout_ms ({config.executor_timeout_ms}) must be at least lease_ms "
            f"({config.lease_ms}) + kill_grace_ms ({config.kill_grace_ms}) + 500 = {floor}")


def validate_executor_config(config: ExecutorConfig) -> None:
    check_id(config.id)
    if not config.cluster:
        raise ConfigError("cluster needs at least one HOST:PORT address")
    for address in config.cluster:
        check_address(address, "cluster")
    if not 1 <= config.slots <= MAX_SLOTS:
        raise ConfigError(f"slots must be between 1 and {MAX_SLOTS}, got {config.slots}")
    _at_least("heartbeat_ms", config.heartbeat_ms, 10, " ms")
    if config.lease_ms < 2 * config.heartbeat_ms:
        # Why: one lost heartbeat must not let the lease lapse.
        raise ConfigError(f"lease_ms ({config.lease_ms}) must be at least 2 * heartbeat_ms "
                          f"({2 * config.heartbeat_ms})")
    _at_least("kill_grace_ms", config.kill_grace_ms, 0, " ms")
    _at_least("output_tail_bytes", config.output_tail_bytes, 0)
    _check_choice("log_level", config.log_level, LOG_LEVELS)
    if config.token_file and not config.tls.enabled:
        raise ConfigError("token_file needs TLS (tls_dir or tls_ca): a bearer token must not cross the network "
                          "in clear")
    if config.token_file and not os.path.isfile(config.token_file):
        raise ConfigError(f"token_file: no such file {config.token_file!r}")
    remote = [a for a in config.cluster if not is_loopback(a)]
    if remote and not config.tls.enabled and not config.insecure:
        raise ConfigError(
            f"cluster {remote[0]!r} is not a loopback address and TLS is off: tasks, results and tokens would "
            "cross the network in clear. Give TLS (--tls-dir, see docs/security.md) or pass --insecure to accept that")


def _check_node_security(config: NodeConfig) -> None:
    if config.tls.enabled and not config.tls.cert:
        raise ConfigError("a TLS node needs its own certificate: tls_cert and tls_key (or tls_dir with node.crt)")
    if config.tokens_file:
        if not config.tls.enabled:
            raise ConfigError("tokens_file needs TLS (tls_dir, or tls_cert/tls_key/tls_ca): bearer tokens must "
                              "not cross the network in clear")
        from raftsched.security.tokens import TokenError, TokenTable  # Why here: config stays import-light

        try:
            # validated once at start (the node loads it again to serve, and warns about its mode then)
            TokenTable.load(config.tokens_file, warn_permissions=False)
        except TokenError as e:
            raise ConfigError(str(e)) from None


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


# --- printing (`raftsched node --print-config`) ------------------------------------------------


def node_config_toml(config: NodeConfig) -> str:
    """The effective configuration as a TOML file `--config` reads back to the same NodeConfig.

    TLS appears as the resolved tls_cert/tls_key/tls_ca files (tls_dir is only a way to name them).
    """
    lines = ["# raftsched node: effective configuration (flags > RAFTSCHED_* environment > file > defaults)"]
    for setting in NODE_SETTINGS:
        if setting.name == "tls_dir":
            continue
        if setting.name.startswith("tls_"):
            value: object = getattr(config.tls, setting.name.removeprefix("tls_"))
        else:
            value = getattr(config, setting.name)
        if setting.kind == "duration":
            assert isinstance(value, int)
            value = format_duration_ms(value)  # a bare TOML number would read as seconds
        lines.append(f"{setting.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{json.dumps(str(k))} = {json.dumps(str(v))}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise AssertionError(f"no TOML form for {value!r}")


# --- TLS -------------------------------------------------------------------------------------


def resolve_tls(*, tls_dir: str = "", cert: str = "", key: str = "", ca: str = "",
                role: str = "client") -> TLSConfig:
    """TLS paths from --tls-dir (ca.crt, <role>.crt, <role>.key) overridden by explicit files.

    Only the paths are checked here; loading and using them belongs to the transport.
    """
    if tls_dir:
        cert = cert or os.path.join(tls_dir, f"{role}.crt")
        key = key or os.path.join(tls_dir, f"{role}.key")
        ca = ca or os.path.join(tls_dir, "ca.crt")
    tls = TLSConfig(cert=cert, key=key, ca=ca)
    if not tls.enabled:
        return tls
    if bool(cert) != bool(key):
        raise ConfigError("tls_cert and tls_key must be given together")
    if not ca:
        raise ConfigError("tls_ca is required when TLS is on")
    for name, path in (("tls_cert", cert), ("tls_key", key), ("tls_ca", ca)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{name}: no such file {path!r}")
    return tls


def _node_cert_stem(values: Mapping[str, object]) -> str:
    """`node-<id>` when the --tls-dir holds this node's own certificate (`certs init --node ID`:
    it names the node, so peers can check Raft messages sent in its name), else `node`."""
    tls_dir, node_id = str(values.get("tls_dir", "")), str(values.get("id", ""))
    if tls_dir and node_id and os.path.isfile(os.path.join(tls_dir, f"node-{node_id}.crt")):
        return f"node-{node_id}"
    return "node"


def _tls_from_values(values: Mapping[str, object], role: str) -> TLSConfig:
    return resolve_tls(tls_dir=str(values.get("tls_dir", "")), cert=str(values.get("tls_cert", "")),
                       key=str(values.get("tls_key", "")), ca=str(values.get("tls_ca", "")), role=role)

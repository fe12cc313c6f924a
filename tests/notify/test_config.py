"""The node's notification settings: durations from flags or the environment, checked once at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftsched.config import ConfigError, load_node_config
from raftsched.node import notify_policy

PEERS = "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003"


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"RAFTSCHED_ID": "n1", "RAFTSCHED_DATA_DIR": str(tmp_path / "d"), "RAFTSCHED_PEERS": PEERS, **extra}


def test_defaults_retry_for_a_day_and_settings_are_read(tmp_path: Path) -> None:
    policy = notify_policy(load_node_config({}, env=env(tmp_path)))
    assert (policy.initial_ms, policy.max_ms, policy.horizon_ms, policy.timeout_ms) == (1000, 300_000, 86_400_000,
                                                                                        10_000)
    config = load_node_config({}, env=env(tmp_path, RAFTSCHED_NOTIFY_RETRY_INITIAL="200ms",
                                          RAFTSCHED_NOTIFY_RETRY_MAX="2s", RAFTSCHED_CLUSTER_NAME="prod-eu"))
    assert (config.notify_retry_initial, config.notify_retry_max, config.cluster_name) == (200, 2000, "prod-eu")


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("NOTIFY_RETRY_HORIZON", "59m", "notify_retry_horizon must be at least"),
    ("NOTIFY_RETRY_INITIAL", "0", "notify_retry_initial must be at least"),
    ("NOTIFY_RETRY_MAX", "10ms", "notify_retry_max must be at least notify_retry_initial"),
    ("NOTIFY_TIMEOUT", "0", "notify_timeout must be at least"),
    ("CLUSTER_NAME", "a b", "cluster_name"),
])
def test_bad_settings_are_refused_naming_them(tmp_path: Path, setting: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_node_config({}, env=env(tmp_path, **{f"RAFTSCHED_{setting}": value}))

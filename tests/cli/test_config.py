"""Config loading: flags > RAFTSCHED_* environment > TOML file > defaults, and every validation
error names the setting at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftsched.config import ConfigError, load_executor_config, load_node_config

PEERS = "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003"


def node_args(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {"id": "n1", "listen": "127.0.0.1:7001", "data_dir": "/nonexistent/n1",
                               "peers": PEERS}
    args.update(overrides)
    return {k: v for k, v in args.items() if v is not None}


def test_defaults_apply_when_nothing_else_is_given() -> None:
    config = load_node_config(node_args(), env={})
    assert (config.heartbeat_ms, config.election_ms, config.tick_ms) == (100, 1000, 10)
    assert config.peers["n2"] == "127.0.0.1:7002"


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("heartbeat_ms = 50\nelection_ms = 600\nlease_ms = 2000\n")
    env = {"RAFTSCHED_HEARTBEAT_MS": "40", "RAFTSCHED_ELECTION_MS": "700"}
    config = load_node_config(node_args(config=str(toml), heartbeat_ms="20"), env=env)
    assert config.heartbeat_ms == 20       # flag
    assert config.election_ms == 700       # environment over the file
    assert config.lease_ms == 2000         # file over the default
    assert config.kill_grace_ms == 1000    # default


def test_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text('log_level = "debug"\n[peers]\nn1 = "127.0.0.1:7001"\n')
    config = load_node_config(node_args(peers=None), env={"RAFTSCHED_CONFIG": str(toml)})
    assert config.log_level == "debug"
    assert config.peers == {"n1": "127.0.0.1:7001"}


def test_listen_defaults_to_this_nodes_peer_address() -> None:
    assert load_node_config(node_args(listen=None), env={}).listen == "127.0.0.1:7001"


@pytest.mark.parametrize(("overrides", "named"), [
    ({"id": "n 1"}, "id"),
    ({"id": None}, "id"),
    ({"data_dir": None}, "data_dir"),
    ({"listen": "127.0.0.1"}, "listen"),
    ({"listen": "127.0.0.1:70000", "peers": "n1=127.0.0.1:7001"}, "listen"),
    ({"peers": "n2=127.0.0.1:7002"}, "peers"),
    ({"peers": "n1=127.0.0.1:7009"}, "peers"),
    ({"peers": "n1=127.0.0.1:0"}, "peers"),
    ({"peers": "n1"}, "peers"),
    ({"peers": None}, "peers"),
    ({"join": "127.0.0.1:7002"}, "join"),
    ({"heartbeat_ms": "5"}, "heartbeat_ms"),
    ({"heartbeat_ms": "abc"}, "heartbeat_ms"),
    ({"election_ms": "400"}, "election_ms"),
    ({"tick_ms": "30"}, "tick_ms"),
    ({"log_level": "loud"}, "log_level"),
    ({"log_format": "xml"}, "log_format"),
    ({"metrics_listen": "nowhere"}, "metrics_listen"),
    ({"advertise": "nowhere"}, "advertise"),
    ({"max_inflight": "0"}, "max_inflight"),
    ({"tls_cert": "/nonexistent.crt"}, "tls"),
])
def test_node_validation_names_the_setting(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_node_config(node_args(**overrides), env={})


def test_executor_timeout_floor_names_all_three_settings() -> None:
    with pytest.raises(ConfigError) as err:
        load_node_config(node_args(executor_timeout_ms="3000", lease_ms="2000", kill_grace_ms="1000"), env={})
    message = str(err.value)
    assert "executor_timeout_ms" in message and "lease_ms" in message and "kill_grace_ms" in message


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("hearbeat_ms = 50\n")
    with pytest.raises(ConfigError, match="hearbeat_ms"):
        load_node_config(node_args(config=str(toml)), env={})


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("heartbeat_ms = = 5\n")
    with pytest.raises(ConfigError, match=r"node\.toml"):
        load_node_config(node_args(config=str(toml)), env={})


def test_restart_without_peers_is_allowed_when_the_data_dir_has_state(tmp_path: Path) -> None:
    (tmp_path / "CURRENT").write_text("x")
    config = load_node_config(node_args(peers=None, data_dir=str(tmp_path)), env={})
    assert config.peers == {}


def test_tls_dir_expands_to_role_files(tmp_path: Path) -> None:
    for name in ("ca.crt", "node.crt", "node.key"):
        (tmp_path / name).write_text("pem")
    tls = load_node_config(node_args(tls_dir=str(tmp_path)), env={}).tls
    assert tls.enabled
    assert (Path(tls.ca).name, Path(tls.cert).name, Path(tls.key).name) == ("ca.crt", "node.crt", "node.key")


def test_executor_config_reads_cluster_from_environment_and_labels_from_flags() -> None:
    config = load_executor_config({"id": "e1", "labels": ["gpu=1", "zone=a,disk=ssd"], "slots": "8"},
                                  env={"RAFTSCHED_CLUSTER": "127.0.0.1:7001,127.0.0.1:7002"})
    assert config.cluster == ("127.0.0.1:7001", "127.0.0.1:7002")
    assert config.labels == {"gpu": "1", "zone": "a", "disk": "ssd"}
    assert config.slots == 8


@pytest.mark.parametrize(("overrides", "named"), [
    ({"slots": "0"}, "slots"),
    ({"slots": "1025"}, "slots"),
    ({"labels": ["novalue"]}, "labels"),
    ({"labels": ["=x"]}, "labels"),
    ({"cluster": "localhost"}, "cluster"),
    ({"id": ""}, "id"),
    ({"heartbeat_ms": "2000"}, "lease_ms"),
])
def test_executor_validation_names_the_setting(overrides: dict[str, object], named: str) -> None:
    args: dict[str, object] = {"id": "e1", **overrides}
    with pytest.raises(ConfigError, match=named):
        load_executor_config(args, env={})

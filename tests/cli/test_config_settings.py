"""Every NodeConfig field is a setting with a flag, an environment variable and a TOML key, and
the printed configuration reads back to the same NodeConfig (issue 7, configuration)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from raftsched.cli.main import build_parser
from raftsched.config import NODE_SETTINGS, NodeConfig, load_node_config, node_config_toml

PEERS = "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003"
TLS_FIELDS = {"tls": {"tls_cert", "tls_key", "tls_ca"}}


def test_every_node_config_field_is_a_setting() -> None:
    names = {s.name for s in NODE_SETTINGS}
    for f in dataclasses.fields(NodeConfig):
        assert TLS_FIELDS.get(f.name, {f.name}) <= names, f"NodeConfig.{f.name} has no setting"


def test_every_setting_has_a_flag_on_raftsched_node() -> None:
    parser = build_parser()
    flags = set()
    for action in parser._subparsers._group_actions[0].choices["node"]._actions:  # type: ignore[union-attr]
        flags.update(action.option_strings)
    for s in NODE_SETTINGS:
        assert s.flag in flags, s.flag
    assert "--print-config" in flags


def test_every_setting_reads_from_the_environment(tmp_path: Path) -> None:
    env = {"RAFTSCHED_ID": "n1", "RAFTSCHED_DATA_DIR": str(tmp_path / "d"), "RAFTSCHED_PEERS": PEERS,
           "RAFTSCHED_MAX_PENDING_PROPOSALS": "77", "RAFTSCHED_METRICS_LISTEN": "127.0.0.1:9100",
           "RAFTSCHED_LOG_FORMAT": "json"}
    config = load_node_config({}, env=env)
    assert (config.max_pending_proposals, config.metrics_listen, config.log_format) == (77, "127.0.0.1:9100", "json")


def test_printed_configuration_reads_back_identically(tmp_path: Path) -> None:
    config = load_node_config({"id": "n2", "data_dir": str(tmp_path / "d"), "peers": PEERS, "heartbeat_ms": "50",
                               "force_new_cluster": "true", "log_level": "debug"}, env={})
    path = tmp_path / "n2.toml"
    path.write_text(node_config_toml(config))
    assert load_node_config({"config": str(path)}, env={}) == config

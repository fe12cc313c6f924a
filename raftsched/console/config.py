"""The console's configuration: flags > RAFTSCHED_* environment > TOML file (--config) > defaults,
loaded with the same machinery as the node's and the executor's, and validated once at start.

Secure by default (docs/security.md): without TLS the console serves only on a loopback address.
"TLS" here means both halves: TLS to the cluster (--tls-dir, so people sign in with the cluster's
tokens and act with their roles) and HTTPS to the browser (--https-cert/--https-key, so those
tokens do not cross the network in clear). Anything else on a non-loopback address needs
--insecure, and the console then says so loudly in its log and on every page.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from raftsched.config import (
    DEFAULT_CLUSTER,
    ArgsLike,
    ConfigError,
    Setting,
    TLSConfig,
    _collect,  # the one loader of flags, environment and TOML (raftsched.config)
    check_address,
    parse_addresses,
    resolve_tls,
)
from raftsched.security.tokens import TokenError, TokenTable, read_token_file

DEFAULT_LISTEN = "127.0.0.1:8080"
LOG_LEVELS = ("debug", "info", "warning", "error")
DOCS = "docs/security.md"

CONSOLE_SETTINGS: tuple[Setting, ...] = (
    Setting("listen", "str", f"host:port to serve the console on (default {DEFAULT_LISTEN})"),
    Setting("cluster", "addresses", "scheduler node addresses HOST:PORT,... (default: the dev cluster)"),
    Setting("tls_dir", "str", "directory holding ca.crt and client.crt/.key, to reach a TLS cluster"),
    Setting("tls_cert", "str", "client certificate file (PEM)"),
    Setting("tls_key", "str", "client private key file (PEM)"),
    Setting("tls_ca", "str", "CA certificate file (PEM)"),
    Setting("token_file", "str", "the console's own bearer token, for its background status reads; needs TLS"),
    Setting("tokens_file", "str", "the cluster's tokens file: people sign in with one of its tokens "
                                  "(required with TLS)"),
    Setting("https_cert", "str", "serve HTTPS with this certificate (PEM)"),
    Setting("https_key", "str", "the private key of --https-cert (PEM)"),
    Setting("insecure", "bool", f"serve without TLS on a non-loopback address anyway (see {DOCS})"),
    Setting("log_level", "str", "debug, info, warning or error"),
)


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    listen: str = DEFAULT_LISTEN
    cluster: tuple[str, ...] = field(default_factory=lambda: parse_addresses(DEFAULT_CLUSTER))
    tls: TLSConfig = field(default_factory=TLSConfig)  # to the cluster
    token: str = ""  # the console's own bearer token (from token_file)
    tokens_file: str = ""  # the cluster's tokens: who may sign in, with which role
    https_cert: str = ""
    https_key: str = ""
    insecure: bool = False
    log_level: str = "info"

    @property
    def host(self) -> str:
        return check_address(self.listen, "listen")[0]

    @property
    def port(self) -> int:
        return check_address(self.listen, "listen")[1]

    @property
    def https(self) -> bool:
        return bool(self.https_cert)

    @property
    def auth(self) -> bool:
        """People sign in with a cluster token (TLS to the cluster); off in insecure mode."""
        return self.tls.enabled

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"{'https' if self.https else 'http'}://{host}:{self.port}/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def load_console_config(args: ArgsLike, env: Mapping[str, str] | None = None) -> ConsoleConfig:
    """Build and validate a ConsoleConfig; raises ConfigError naming the offending setting."""
    values = _collect(CONSOLE_SETTINGS, args, os.environ if env is None else env)
    tls = resolve_tls(tls_dir=str(values.pop("tls_dir", "")), cert=str(values.pop("tls_cert", "")),
                      key=str(values.pop("tls_key", "")), ca=str(values.pop("tls_ca", "")), role="client")
    token = _own_token(str(values.pop("token_file", "")), tls)
    config = ConsoleConfig(**values, tls=tls, token=token)  # type: ignore[arg-type]
    validate_console_config(config)
    return config


def _own_token(path: str, tls: TLSConfig) -> str:
    if not path:
        return ""
    if not tls.enabled:
        raise ConfigError("token_file needs TLS (tls_dir or tls_ca): a bearer token must not cross the network "
                          "in clear")
    try:
        return read_token_file(path)
    except TokenError as e:
        raise ConfigError(str(e)) from None


def validate_console_config(config: ConsoleConfig) -> None:
    check_address(config.listen, "listen")
    if config.log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {config.log_level!r}")
    _check_https(config)
    _check_sign_in(config)
    if not config.loopback and not (config.tls.enabled and config.https) and not config.insecure:
        raise ConfigError(
            f"refusing to serve the console on {config.listen} without TLS: anyone who reaches it could "
            "read and change the cluster. Give --tls-dir (TLS to the cluster, sign-in with its tokens) and "
            "--https-cert/--https-key (HTTPS to browsers), or listen on 127.0.0.1, or pass --insecure to "
            f"serve it anyway; see {DOCS}")


def _check_https(config: ConsoleConfig) -> None:
    if bool(config.https_cert) != bool(config.https_key):
        raise ConfigError("https_cert and https_key must be given together")
    for name in ("https_cert", "https_key"):
        path = getattr(config, name)
        if path and not os.path.isfile(path):
            raise ConfigError(f"{name}: no such file {path!r}")


def _check_sign_in(config: ConsoleConfig) -> None:
    if config.tokens_file and not config.tls.enabled:
        raise ConfigError("tokens_file needs TLS to the cluster (tls_dir, or tls_cert/tls_key/tls_ca): tokens "
                          "must not cross the network in clear")
    if config.tls.enabled and not config.tokens_file:
        raise ConfigError("with TLS the console signs people in with the cluster's tokens: give --tokens-file "
                          f"(the file the nodes read; see {DOCS})")
    if config.tokens_file:
        try:
            TokenTable.load(config.tokens_file, warn_permissions=False)
        except TokenError as e:
            raise ConfigError(str(e)) from None

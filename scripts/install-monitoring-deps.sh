#!/usr/bin/env bash
# Installs promtool, which the tests of the shipped alert rules run (tests/deploy/:
# `promtool check rules` and `promtool test rules` over deploy/prometheus/). Debian ships it in the
# `prometheus` package. .ci/run calls this before `make test`; it does nothing when promtool is
# already on PATH. Root is needed only to install.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "promtool is missing; install it as root: apt-get install prometheus (or run this script as root)" >&2
  exit 1
fi
echo "installing prometheus (Debian) for promtool, the alert-rule tests' tool" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: only promtool is needed, not the exporters and web assets recommended beside it
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a Prometheus server on :9090 where systemd runs; the tests need only the binary.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
  systemctl disable prometheus >/dev/null 2>&1 || true
fi
promtool --version >&2

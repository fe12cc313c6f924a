#!/usr/bin/env bash
# Installs the browser the console's tests drive (tests/console/): Debian's Firefox ESR, headless,
# over Marionette. Nothing is downloaded by a test tool; this is the only install step, and
# .ci/run calls it before `make test`. Does nothing when firefox-esr is already there.
#
# Why Firefox ESR: Debian's Chromium crashed headless on these machines; Firefox ships Marionette
# in the browser itself, so the driver is a pure-Python package (marionette-driver, a dev extra).
set -euo pipefail

if command -v firefox-esr >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "firefox-esr is missing; install it as root: apt-get install firefox-esr (or run this script as root)" >&2
  exit 1
fi
echo "installing firefox-esr (Debian) for the console's browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq firefox-esr >/dev/null
firefox-esr --version >&2

#!/usr/bin/env bash
# Installs what the chaos harness's clock nemesis needs (jepsen-style/faults_clock.py): Debian's
# libfaketime, preloaded into chosen node and executor processes to move their wall clocks.
# .ci/run calls this before `make test`. Does nothing when it is already there.
set -euo pipefail

LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
if [ -e "$LIB" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "libfaketime is missing; install it as root: apt-get install faketime libfaketime (or run this script as root)" >&2
  exit 1
fi
echo "installing faketime and libfaketime (Debian) for the chaos harness's clock nemesis" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq faketime libfaketime >/dev/null
test -e "$LIB"

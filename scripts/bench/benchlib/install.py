"""What the benchmark needs besides raftsched: etcd (Debian `etcd-server`, `etcd-client`) and
PySyncObj (PyPI `pysyncobj`, into the running interpreter's environment). Installed when missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

APT_PACKAGES = ("etcd-server", "etcd-client")


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run([*prefix, "apt-get", *args], capture_output=True, text=True, env=env, timeout=600)


def ensure_etcd() -> str | None:
    """Path of the etcd binary, installing the Debian packages if needed; None (and why, on stderr)
    when it cannot be had."""
    found = shutil.which("etcd")
    if found:
        return found
    if shutil.which("apt-get") is None:
        _say("etcd is missing and there is no apt-get: the etcd anchor is skipped")
        return None
    _say(f"installing {' '.join(APT_PACKAGES)} with apt-get (etcd, the anchor) ...")
    result = _apt("install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES)
    if result.returncode != 0:
        _say("apt-get install failed; running apt-get update and trying again ...")
        _apt("update", "-qq")
        result = _apt("install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES)
    found = shutil.which("etcd")
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        _say(f"could not install etcd: {' | '.join(tail)}; the etcd anchor is skipped")
        return None
    _say(f"installed {found}")
    return found


def ensure_pysyncobj() -> bool:
    """True when `pysyncobj` imports, installing it with pip into this interpreter if needed."""
    if importlib.util.find_spec("pysyncobj") is not None:
        return True
    _say(f"installing pysyncobj into {sys.prefix} with pip (PySyncObj, the anchor) ...")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             "pysyncobj"], capture_output=True, text=True, timeout=600)
    importlib.invalidate_caches()
    if result.returncode != 0 or importlib.util.find_spec("pysyncobj") is None:
        tail = result.stderr.strip().splitlines()[-3:]
        _say(f"could not install pysyncobj: {' | '.join(tail)}; the PySyncObj anchor is skipped")
        return False
    return True

"""Real processes for the console tests: `raftsched console` and a headless Firefox ESR.

Every process is started in its own session, tracked by PID and killed (its whole process group)
at teardown. Both listen on 127.0.0.1 only. Waits poll a condition against a deadline.

Firefox is Debian's `firefox-esr`, installed by `scripts/install-browser.sh` (which `.ci/run` calls
before `make test`), driven over Marionette (`marionette-driver`, a dev extra): the same way the
acceptance check starts it, with a fresh profile whose `user.js` sets `marionette.port`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from integration.cluster import BIN, WaitTimeout

from raftsched.testing.procs import free_port_range

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("RAFTSCHED_SCREENSHOTS") or ROOT / "store" / "console-screenshots")
FIREFOX = "firefox-esr"
# Quiet, offline Firefox: no update checks, telemetry, safe-browsing lists or first-run pages.
FIREFOX_PREFS = {
    "browser.shell.checkDefaultBrowser": False, "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0, "browser.newtabpage.enabled": False, "app.update.enabled": False,
    "app.normandy.enabled": False, "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False, "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False, "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False, "extensions.update.enabled": False,
    "browser.aboutwelcome.enabled": False, "dom.disable_beforeunload": True,
}


def wait_until(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy (and return it), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except (OSError, AssertionError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout:.1f} s (last: {last!r})")
        time.sleep(interval)


def _stop(popen: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(10)
    # The group may outlive its leader (Firefox's content processes): end it too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)


@dataclass
class ConsoleProcess:
    """`raftsched console` on a free loopback port."""

    cluster: str
    log: Path
    extra: Sequence[str] = ()
    port: int = field(default_factory=lambda: free_port_range(1)[0])
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ConsoleProcess:
        argv = [str(BIN), "console", "--listen", f"127.0.0.1:{self.port}", "--cluster", self.cluster, *self.extra]
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        wait_until(self._healthy, timeout, f"the console at {self.url} answers /healthz")
        return self

    def _healthy(self) -> bool:
        assert self.popen is not None and self.popen.poll() is None, f"the console exited: {self.tail()}"
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self) -> None:
        if self.popen is not None:
            _stop(self.popen)


def firefox_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if shutil.which(FIREFOX) is None:
        return f"{FIREFOX} is not installed: run scripts/install-browser.sh (as root; .ci/run does)"
    try:
        _marionette()
    except ImportError:
        return "marionette-driver is not installed: pip install -e '.[dev]'"
    return None


def _marionette() -> Any:
    """The Marionette class; its import (mozinfo) calls a deprecated `distro` function, which this
    suite's warnings-as-errors would turn into a failure: silenced here only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from marionette_driver.marionette import Marionette
    return Marionette


class Browser:
    """A headless Firefox ESR with a fresh profile, driven over Marionette."""

    def __init__(self, profile: Path, log: Path, width: int = 1400, height: int = 900) -> None:
        marionette = _marionette()
        self.port = free_port_range(1)[0]
        profile.mkdir(parents=True, exist_ok=True)
        prefs = {"marionette.port": self.port, **FIREFOX_PREFS}
        (profile / "user.js").write_text("".join(f"user_pref({_js(k)}, {_js(v)});\n" for k, v in prefs.items()))
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                [FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile),
                 "--width", str(width), "--height", str(height)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            # Wait for the port first: marionette-driver's own wait leaks a socket per refused try.
            wait_until(lambda: self._listening(), 60, f"Firefox's Marionette port {self.port}")
            self.m: Any = marionette(host="127.0.0.1", port=self.port, startup_timeout=60)
            self.m.start_session()
            self.m.timeout.page_load = 30
        except BaseException:
            _stop(self.popen)
            raise

    def _listening(self) -> bool:
        assert self.popen.poll() is None, f"Firefox exited with code {self.popen.returncode}"
        with socket.socket() as s:
            s.settimeout(1.0)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    # --- driving ---

    def go(self, url: str) -> None:
        self.m.navigate(url)

    def text(self, selector: str = "body") -> str:
        value = self.m.execute_script(
            "var el = document.querySelector(arguments[0]); return el ? el.innerText : null;",
            script_args=[selector])
        return str(value) if value is not None else ""

    def js(self, script: str, *args: object) -> Any:
        return self.m.execute_script(script, script_args=list(args))

    def click(self, selector: str) -> None:
        """Click the element; found again if a live region replaced it between find and click."""
        from marionette_driver.by import By
        from marionette_driver.errors import StaleElementException

        def clicked() -> bool:
            try:
                self.m.find_element(By.CSS_SELECTOR, selector).click()
            except StaleElementException:
                return False
            return True

        wait_until(clicked, 5, f"click {selector}", interval=0.05)

    def fill(self, selector: str, value: str) -> None:
        from marionette_driver.by import By

        element = self.m.find_element(By.CSS_SELECTOR, selector)
        element.clear()
        element.send_keys(value)

    def url(self) -> str:
        return str(self.m.get_url())

    def mark(self) -> None:
        """Tag the current document; `marked()` is False once the page was reloaded or left."""
        self.js("document.documentElement.setAttribute('data-test-mark', '1');")

    def marked(self) -> bool:
        return bool(self.js("return document.documentElement.getAttribute('data-test-mark') === '1';"))

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(self.m.screenshot(format="binary", full=True))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.m.delete_session()
        _stop(self.popen)


def _js(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

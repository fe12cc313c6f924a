"""The receivers in examples/webhooks (docs/alerting.md) run as written: they accept a signed
event once, answer a repeat with 2xx without acting again, and refuse a bad signature."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from raftsched.notify import webhook
from raftsched.v1 import notify_pb2

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "webhooks"
SECRET = b"example-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(port: int, payload: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/hook", data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def wait_listening(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"the example did not listen on {port}")


@pytest.mark.parametrize("argv", [[sys.executable, "receiver.py"], ["node", "receiver.js"]], ids=["python", "node"])
def test_the_example_receiver_verifies_and_acts_once(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    port = free_port()
    proc = subprocess.Popen([*argv, str(port)], cwd=EXAMPLES, env={"RAFTSCHED_WEBHOOK_SECRET": SECRET.decode(),
                            "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        event = notify_pb2.NotifyEvent(id="e9.0", type="job.failed", time_ms=1, data_json='{"job_id":"j1"}')
        payload = webhook.body(event, "c")
        assert post(port, payload, webhook.headers(event, SECRET, payload)) == 204
        assert post(port, payload, webhook.headers(event, SECRET, payload)) == 204  # a repeat
        assert post(port, payload, webhook.headers(event, b"wrong", payload)) == 401
        assert post(port, payload, webhook.headers(event, b"", payload)) == 401  # unsigned
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    printed = [line.replace(" ", "") for line in out.splitlines()]  # json.dumps spaces or not
    assert printed == ['job.failed{"job_id":"j1"}'], (out, err)

"""A webhook receiver for tests and scripts: verifies each delivery's signature, records what came
and when, and can go down (its port refuses connections) and come back on the same port."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook receiver on a fixed port that can go down (the port refuses) and come back."""

    def __init__(self, port: int, secret: bytes) -> None:
        self.port = port
        self.secret = secret
        self.url = f"http://127.0.0.1:{port}/hook"
        self.deliveries: list[tuple[str, bytes, bool]] = []  # (X-Raftsched-Event-Id, body, signature ok)
        self.arrived_ms: list[int] = []  # wall-clock arrival of each delivery (to compare with time_ms)
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = "sha256=" + hmac.new(receiver.secret, raw, hashlib.sha256).hexdigest()
                good = hmac.compare_digest(self.headers.get("X-Raftsched-Signature", ""), expected)
                with receiver.lock:
                    receiver.deliveries.append((self.headers.get("X-Raftsched-Event-Id", ""), raw, good))
                    receiver.arrived_ms.append(int(time.time() * 1000))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[tuple[str, dict[str, object], bool]]:
        with self.lock:
            return [(event_id, json.loads(raw), good) for event_id, raw, good in self.deliveries]

    def failed_ids(self, job_id: str) -> set[str]:
        return {i for i, body, _ in self.events()
                if body["type"] == "job.failed" and body["data"]["job_id"] == job_id}  # type: ignore[index]

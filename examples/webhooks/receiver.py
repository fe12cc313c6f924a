"""A raftsched webhook receiver: verify the signature, skip repeats by event id, act once.
Run: RAFTSCHED_WEBHOOK_SECRET=... python receiver.py 8099   (standard library only)"""
import hashlib, hmac, json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["RAFTSCHED_WEBHOOK_SECRET"].encode()
seen: set[str] = set()  # keep these in your database in real life: delivery is at least once


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        good = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, self.headers.get("X-Raftsched-Signature", "")):
            self.send_response(401); self.end_headers(); return  # not from our cluster
        event = json.loads(body)
        if event["id"] not in seen:  # a repeat carries the same id: answer 2xx, do nothing
            seen.add(event["id"])
            print(event["type"], json.dumps(event["data"]), flush=True)  # page someone, open a ticket...
        self.send_response(204); self.end_headers()  # any 2xx: delivered; anything else: retried


HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8099), Hook).serve_forever()

"""A stand-in for the Graph API's Send API on loopback that records what it receives.

Not a mock of our code: the webhook talks real HTTP to it. `fail_next` makes the
next answers fail with the given statuses (to test retries).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeGraphApi:
    def __init__(self):
        self.requests: list[dict] = []  # every accepted body, with its arrival time
        self.attempts = 0
        self.fail_next: list[int] = []
        self.authorizations: set[str] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real Graph API
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle's
            # algorithm and delayed ACKs would add 40 ms to every answer.
            disable_nagle_algorithm = True

            def do_POST(self):  # http.server calls it by this name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.attempts += 1
                    status = fake.fail_next.pop(0) if fake.fail_next else 200
                    if status == 200 and self.path == "/v21.0/me/messages":
                        fake.requests.append({**body, "received_at": time.perf_counter()})
                        fake.authorizations.add(self.headers.get("Authorization", ""))
                        fake._changed.notify_all()
                answer = b'{"recipient_id": "1", "message_id": "m"}' if status == 200 else b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v21.0"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def texts(self, psid: str | None = None) -> list[str]:
        with self._lock:
            return [
                r["message"]["text"]
                for r in self.requests
                if "message" in r and (psid is None or r["recipient"]["id"] == psid)
            ]

    def actions(self, psid: str) -> list[str]:
        with self._lock:
            return [
                r.get("sender_action") or "text"
                for r in self.requests
                if r["recipient"]["id"] == psid
            ]

    def wait_for_texts(self, count: int, timeout: float = 30.0) -> None:
        with self._changed:
            self._changed.wait_for(
                lambda: sum("message" in r for r in self.requests) >= count, timeout
            )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A stand-in for the Graph API on loopback that records what it receives.

Not a mock of our code: the webhook talks real HTTP to it. It answers the Send API
(`POST /me/messages`), the Messenger Profile API (`GET`/`POST /me/messenger_profile`)
and `GET /me`, with Graph's error shape when told to fail:

- `fail_next`: the next message sends (not sender actions) fail, each given as an
  HTTP status (an empty body), `(status, code[, subcode])` (a Graph error body), or
  `("delivered", status)`: delivered (and echoed), yet answered with that status;
- `echo`: called, in order and off the request's thread, with the webhook payload
  echoing each delivered message that has `metadata` (as Messenger's `message_echoes`
  does); the caller signs and posts it to the webhook;
- `fail_recipients`: `{psid: (status, code, subcode)}`, every send to them fails;
- `bad_token = True`: every call fails with code 190, as with an expired token;
- `usage_headers`: rate-limit usage headers (`X-Business-Use-Case-Usage`...) sent with
  every answer;
- for `mimical messenger setup`: `GET /app` (the token's app, `APP_ID`), `GET
  /debug_token` (the page token's `scopes`) and `GET /APP_ID/subscriptions` (the
  app-level webhook's `app_fields`; None: no Page subscription at all), answered to
  the app token `APP_ID|secret` only;
- for Meta's data deletion callback: `GET /ASID/ids_for_pages` (Graph's ID matching
  API, app token only) answers the PSIDs in `page_ids[ASID]`; an ASID not there gets
  Graph's "does not exist" error (100/33);
- the handover protocol: `POST /me/pass_thread_control` and `/me/take_thread_control`
  are recorded in `thread_control` as `(path, body)`;
- `fail_posts`: `{path: (status, code[, subcode])}`, every POST to that path fails;
- `action_budget`: how many more sender actions to answer; past it each one is held
  until the budget is raised or set back to None (no limit). `wait_holding_action`
  waits until one is held: a worker is then stuck mid-event, as long as the test likes.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERSION = "v26.0"
APP_ID = "1234567890"
# What `mimical messenger setup` needs (`mimical.messenger.cli.REQUIRED_PERMISSIONS`).
PAGE_SCOPES = ["pages_messaging", "pages_manage_metadata", "pages_show_list"]
APP_FIELDS = ["message_echoes", "messages", "messaging_handovers", "messaging_postbacks", "standby"]


def graph_error(status: int, code: int, subcode: int | None = None) -> tuple[int, dict]:
    error = {
        "message": f"fake Graph error {code}",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "fake",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}


class QuietServer(ThreadingHTTPServer):
    """Clients killed mid-request (the chaos runs) are not errors worth a traceback."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeGraphApi:
    def __init__(self):
        self.requests: list[dict] = []  # every accepted Send API body, with its arrival time
        self.attempts = 0  # Send API calls, failed ones included
        self.text_count = 0  # accepted messages (not sender actions)
        self.fail_next: list = []
        self.fail_recipients: dict[str, tuple] = {}
        self.bad_token = False
        self.echo: Callable[[bytes], None] | None = None
        self.subscribed_fields: list[str] = []
        self._echoes: queue.Queue = queue.Queue()
        self.action_budget: int | None = None
        self.holding = 0  # sender actions being held right now
        self.profile: dict = {}
        self.usage_headers: dict[str, str] = {}
        self.fail_posts: dict[str, tuple] = {}
        self.scopes: list[str] = list(PAGE_SCOPES)
        self.app_fields: list[str] | None = list(APP_FIELDS)
        self.profile_posts = 0
        self.page_ids: dict[str, list[str]] = {}
        self.thread_control: list[tuple[str, dict]] = []
        self.authorizations: set[str] = set()
        self.proofs: set[str] = set()  # appsecret_proof of every call
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real Graph API
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle's
            # algorithm and delayed ACKs would add 40 ms to every answer.
            disable_nagle_algorithm = True

            def _answer(self, status: int, body: dict) -> None:
                answer = json.dumps(body).encode()
                self.send_response(status)
                for name, value in fake.usage_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _route(self) -> tuple[str, dict]:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                authorization = self.headers.get("Authorization", "")
                with fake._lock:
                    fake.authorizations.add(authorization)
                    if "|" not in authorization:  # app tokens ("id|secret") need no proof
                        fake.proofs.update(query.get("appsecret_proof", [""]))
                return url.path.removeprefix(f"/{VERSION}"), query

            def do_GET(self):  # http.server calls it by this name
                path, query = self._route()
                app_token = self.headers.get("Authorization", "").startswith(f"Bearer {APP_ID}|")
                if fake.bad_token:
                    self._answer(*graph_error(400, 190))
                elif path == "/app":
                    self._answer(200, {"id": APP_ID, "name": "mimical test"})
                elif path == "/debug_token" and app_token:
                    with fake._lock:
                        scopes = list(fake.scopes)
                    data = {"app_id": APP_ID, "type": "PAGE", "is_valid": True, "scopes": scopes}
                    self._answer(200, {"data": data})
                elif path == f"/{APP_ID}/subscriptions" and app_token:
                    with fake._lock:
                        fields = fake.app_fields
                    page = {
                        "object": "page",
                        "callback_url": "https://example.test/webhook",
                        "active": True,
                        "fields": [{"name": name, "version": VERSION} for name in fields or []],
                    }
                    self._answer(200, {"data": [page] if fields is not None else []})
                elif path.endswith("/ids_for_pages") and app_token:
                    with fake._lock:
                        psids = fake.page_ids.get(path.split("/")[1])
                    if psids is None:
                        self._answer(*graph_error(400, 100, 33))
                    else:
                        page = {"id": "PAGE", "name": "mimical test page"}
                        self._answer(200, {"data": [{"id": p, "page": page} for p in psids]})
                elif path == "/me":
                    self._answer(200, {"id": "PAGE"})
                elif path == "/me/messenger_profile":
                    with fake._lock:
                        self._answer(200, {"data": [dict(fake.profile)] if fake.profile else []})
                elif path == "/me/subscribed_apps":
                    with fake._lock:
                        fields = list(fake.subscribed_fields)
                    self._answer(200, {"data": [{"subscribed_fields": fields}] if fields else []})
                else:
                    self._answer(*graph_error(404, 803))

            def do_POST(self):  # http.server calls it by this name
                path, query = self._route()
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length)) if length else {}
                except ValueError:  # a client killed mid-request (chaos runs)
                    self.close_connection = True
                    return
                if fake.bad_token:
                    self._answer(*graph_error(400, 190))
                elif path in fake.fail_posts:
                    self._answer(*graph_error(*fake.fail_posts[path]))
                elif path == "/me/messenger_profile":
                    with fake._lock:
                        fake.profile.update(body)
                        fake.profile_posts += 1
                    self._answer(200, {"result": "success"})
                elif path == "/me/messages":
                    self._send_api(body)
                elif path in ("/me/pass_thread_control", "/me/take_thread_control"):
                    with fake._lock:
                        fake.thread_control.append((path, body))
                        fake._changed.notify_all()
                    self._answer(200, {"success": True})
                elif path == "/me/subscribed_apps":
                    with fake._lock:
                        fake.subscribed_fields = query["subscribed_fields"][0].split(",")
                    self._answer(200, {"success": True})
                else:
                    self._answer(*graph_error(404, 803))

            def _send_api(self, body: dict) -> None:
                action = "sender_action" in body
                if action:
                    fake._take_action_budget()
                with fake._lock:
                    fake.attempts += 1
                    failure = fake.fail_next.pop(0) if fake.fail_next and not action else None
                    failure = failure or fake.fail_recipients.get(body["recipient"]["id"])
                    delivered_anyway = isinstance(failure, tuple) and failure[0] == "delivered"
                    if failure is None or delivered_anyway:
                        fake.requests.append({**body, "received_at": time.perf_counter()})
                        fake.text_count += "message" in body
                        fake._changed.notify_all()
                        if "metadata" in body.get("message", {}) and fake.echo is not None:
                            fake._echoes.put(body)
                        failure = failure[1] if delivered_anyway else None
                if failure is None:
                    self._answer(
                        200, {"recipient_id": body["recipient"]["id"], "message_id": "m_fake"}
                    )
                elif isinstance(failure, int):
                    self._answer(failure, {})
                else:
                    self._answer(*graph_error(*failure))

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._send_echoes, daemon=True).start()
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/{VERSION}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _send_echoes(self) -> None:
        while (body := self._echoes.get()) is not None:
            event = {
                "sender": {"id": "PAGE"},
                "recipient": body["recipient"],
                "timestamp": int(time.time() * 1000),
                "message": {
                    "is_echo": True,
                    "mid": f"m_echo_{time.monotonic_ns()}",
                    **body["message"],
                },
            }
            payload = {"object": "page", "entry": [{"id": "PAGE", "messaging": [event]}]}
            self.echo(json.dumps(payload).encode())

    def _take_action_budget(self) -> None:
        with self._changed:
            if self.action_budget is not None and self.action_budget <= 0:
                self.holding += 1
                self._changed.notify_all()
                self._changed.wait_for(lambda: self.action_budget is None or self.action_budget > 0)
                self.holding -= 1
            if self.action_budget is not None:
                self.action_budget -= 1

    def set_action_budget(self, budget: int | None) -> None:
        with self._changed:
            self.action_budget = budget
            self._changed.notify_all()

    def texts(self, psid: str | None = None) -> list[str]:
        with self._lock:
            return [
                r["message"]["text"]
                for r in self.requests
                if "message" in r and (psid is None or r["recipient"]["id"] == psid)
            ]

    def messages(self, psid: str) -> list[dict]:
        with self._lock:
            return [
                r["message"]
                for r in self.requests
                if "message" in r and r["recipient"]["id"] == psid
            ]

    def actions(self, psid: str) -> list[str]:
        with self._lock:
            return [
                r.get("sender_action") or "text"
                for r in self.requests
                if r["recipient"]["id"] == psid
            ]

    def wait_for_texts(self, count: int, timeout: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.text_count >= count, timeout)

    def wait_holding_action(self, timeout: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.holding > 0, timeout)

    def close(self) -> None:
        self._echoes.put(None)
        self.server.shutdown()
        self.server.server_close()

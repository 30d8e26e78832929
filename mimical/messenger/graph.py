"""The page's side of the Graph API: Send API calls, the Messenger Profile, token checks.

Every call carries the page token in a header (never in a URL a log could keep) and
`appsecret_proof`, the HMAC-SHA256 of the token keyed with the app secret, which
apps with "Require App Secret" demand on every call.

Failures are `GraphError`s classified by Graph's error code
(`mimical.messenger.graph_errors`: temporary ones, throttles included, are retried here).

Graph also reports how much of the rate limits the app has used, in the
`X-Business-Use-Case-Usage` (Messenger's business use case), `X-App-Usage` and
`X-Page-Usage` headers (percentages, and `estimated_time_to_regain_access` in minutes
once throttled). Past `SLOW_FROM_PERCENT` every call of this client waits a little
(up to `usage_pause_seconds` at 100 %), and once throttled it waits until access
returns, so the senders slow down before Meta refuses them.

Usage:

    graph = GraphApi(settings.graph_api_url, token, app_secret)
    graph.send_text(psid, "hello", quick_replies=["tiny"])
    graph.set_messenger_profile({"get_started": {"payload": "GET_STARTED"}})
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable

from mimical.messenger.graph_errors import GraphError, classify

log = logging.getLogger(__name__)

# Tries of a call answered with code 2, which may mean the person blocked the Page.
MAYBE_BLOCKED_ATTEMPTS = 2
USAGE_HEADERS = ("X-Business-Use-Case-Usage", "X-App-Usage", "X-Page-Usage")
# Usage (percent of a rate limit) from which calls are spaced out.
SLOW_FROM_PERCENT = 75.0
# Longest wait for throttled access to return before a call is tried anyway.
MAX_THROTTLE_SECONDS = 600.0
# The Send API's longest message text.
SEND_API_MAX_CHARS = 2000
# Quick replies: at most 13, titles of at most 20 characters (Send API limits).
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
REQUEST_TIMEOUT_SECONDS = 10.0


def read_usage(headers) -> tuple[float, float] | None:
    """(highest usage percent, seconds until throttled access returns) from Graph's usage
    headers, or None when there are none (absence is not zero usage)."""
    import json

    found, percent, regain = False, 0.0, 0.0
    for name in USAGE_HEADERS:
        try:
            value = json.loads(headers.get(name) or "null")
        except ValueError:
            continue
        if not isinstance(value, dict):
            continue
        found = True
        # X-Business-Use-Case-Usage: {business id: [usage, ...]}; the others: one usage.
        usages = [value]
        if name == "X-Business-Use-Case-Usage":
            usages = [u for v in value.values() if isinstance(v, list) for u in v]
        for usage in usages:
            if not isinstance(usage, dict):
                continue
            for key in ("call_count", "total_cputime", "total_time"):
                if isinstance(usage.get(key), int | float):
                    percent = max(percent, float(usage[key]))
            minutes = usage.get("estimated_time_to_regain_access")
            if isinstance(minutes, int | float):
                regain = max(regain, 60.0 * minutes)
    return (percent, regain) if found else None


def split_message(text: str, limit: int = SEND_API_MAX_CHARS) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line break or space when there is one."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = text.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n ")
    if text:
        pieces.append(text)
    return pieces


def _pause(seconds: float, before_retry: Callable[[], None]) -> None:
    """Sleep `seconds`, calling `before_retry` at least every second: a long wait must
    not cost the Messenger worker its lease on the user."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        before_retry()


def appsecret_proof(app_secret: str, access_token: str) -> str:
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


class GraphApi:
    """One page's Graph API client: retries temporary errors, raises `GraphError` otherwise.

    `attempts` bounds the tries of one call; the backoff doubles from `backoff_seconds`
    (rate limits from eight times that, as Graph asks callers to pause) up to
    `max_backoff_seconds`, with jitter so replicas do not retry in step.
    `usage_pause_seconds` spaces calls out while Graph reports high usage.
    `usage_percent` is the last usage Graph reported, also told to `on_usage`; `on_error`
    sees every failed call, retried or not (both for `/metrics`).
    """

    def __init__(
        self,
        graph_api_url: str,
        page_access_token: str,
        app_secret: str = "",
        *,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        usage_pause_seconds: float = 2.0,
        on_error: Callable[[GraphError], None] = lambda error: None,
        on_usage: Callable[[float], None] = lambda percent: None,
    ):
        import requests
        from requests.adapters import HTTPAdapter

        self.base_url = graph_api_url.rstrip("/")
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.usage_pause_seconds = usage_pause_seconds
        self.on_error = on_error
        self.on_usage = on_usage
        self.usage_percent = 0.0
        self._not_before = 0.0  # monotonic time before which no call starts
        self.session = requests.Session()
        # Proxy settings from the environment, resolved once instead of on every call
        # (requests re-reads os.environ per request, a measurable cost at 200 msg/s).
        self.session.proxies = requests.utils.get_environ_proxies(self.base_url)
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"Bearer {page_access_token}"
        self.params = {}
        if app_secret and page_access_token:
            self.params["appsecret_proof"] = appsecret_proof(app_secret, page_access_token)
        # Retries are ours (by Graph error code), never urllib3's blind ones.
        adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _once(self, method: str, path: str, body: dict | None) -> dict:
        import requests
        import urllib3

        try:
            response = self.session.request(
                method,
                self.base_url + path,
                params=self.params,
                json=body,
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except requests.exceptions.ConnectTimeout as error:
            raise GraphError("temporary", 0, message=type(error).__name__) from None
        except requests.exceptions.ConnectionError as error:
            # Refused before a byte was sent: safe to retry. Reset mid-way: maybe delivered.
            reason = getattr(error.args[0] if error.args else None, "reason", None)
            never_sent = isinstance(reason, urllib3.exceptions.NewConnectionError)
            kind = "temporary" if never_sent else "ambiguous"
            raise GraphError(kind, 0, message=type(error).__name__) from None
        except requests.exceptions.Timeout as error:  # sent, but no answer in time
            raise GraphError("ambiguous", 0, message=type(error).__name__) from None
        self._note_usage(response.headers)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code < 400:
            return answer if isinstance(answer, dict) else {}
        kind, code, subcode, message = classify(response.status_code, answer)
        retry_after = response.headers.get("Retry-After", "")
        raise GraphError(
            kind,
            response.status_code,
            code,
            subcode,
            message,
            float(retry_after) if retry_after.isdigit() else None,
        )

    def _note_usage(self, headers) -> None:
        usage = read_usage(headers)
        if usage is None:
            return
        self.usage_percent, regain = usage
        self.on_usage(self.usage_percent)
        pause = regain
        if not pause and self.usage_percent > SLOW_FROM_PERCENT:
            high = min(self.usage_percent, 100.0) - SLOW_FROM_PERCENT
            pause = self.usage_pause_seconds * high / (100.0 - SLOW_FROM_PERCENT)
        if pause:
            pause = min(pause, MAX_THROTTLE_SECONDS)
            log.info("Graph API usage at %.0f%%: pausing calls %.1f s", self.usage_percent, pause)
            self._not_before = max(self._not_before, time.monotonic() + pause)

    def seconds_until_allowed(self) -> float:
        """How long the next call will wait because of Graph's reported usage."""
        return max(0.0, self._not_before - time.monotonic())

    def _wait_turn(self, before_retry: Callable[[], None], deadline: float | None) -> None:
        """Wait until Graph's reported usage allows a call; "expired" if that is past
        `deadline` (seconds since the epoch)."""
        wait = self.seconds_until_allowed()
        if deadline is not None and time.time() + wait > deadline:
            raise GraphError("expired", 0, message=f"throttled for {wait:.0f} s more")
        _pause(wait, before_retry)

    def call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        repeatable: bool = False,
        before_retry: Callable[[], None] = lambda: None,
        deadline: float | None = None,
    ) -> dict:
        """One Graph call, retried while it fails temporarily (and, if `repeatable`,
        when the outcome is ambiguous); the last `GraphError` is raised.

        `before_retry` runs before each retry and during long waits (the Messenger
        worker renews its lease on the user there, or gives up if another worker took
        the user over). With a `deadline` (seconds since the epoch), a throttled call is
        retried until then, however many tries that takes, and raises "expired" rather
        than wait past it."""
        attempt = 0
        while True:
            try:
                self._wait_turn(before_retry, deadline)
                return self._once(method, path, body)
            except GraphError as error:
                self.on_error(error)
                retry = error.kind == "temporary" or (repeatable and error.kind == "ambiguous")
                attempt += 1
                attempts = MAYBE_BLOCKED_ATTEMPTS if error.code == 2 else self.attempts
                until_deadline = deadline is not None and error.rate_limited
                if not retry or (attempt >= min(attempts, self.attempts) and not until_deadline):
                    raise
                factor = 8 if error.rate_limited else 1
                delay = self.backoff_seconds * factor * 2 ** min(attempt - 1, 16)
                delay = error.retry_after or min(delay, self.max_backoff_seconds)
                delay *= random.uniform(0.8, 1.2)
                if until_deadline and time.time() + delay > deadline:
                    expired = GraphError("expired", error.status, error.code, message=str(error))
                    raise expired from None
                log.info("Graph API: %s; retrying in %.1f s", error, delay)
                _pause(delay, before_retry)

    def sender_action(self, psid: str, action: str) -> None:
        """`mark_seen`, `typing_on` or `typing_off` (harmless to repeat)."""
        self.call(
            "POST",
            "/me/messages",
            {"recipient": {"id": psid}, "sender_action": action},
            repeatable=True,
        )

    def send_text(
        self,
        psid: str,
        text: str,
        quick_replies: list[str] = (),
        before_retry: Callable[[], None] = lambda: None,
        metadata: str | None = None,
        deadline: float | None = None,
    ) -> None:
        """Send one message; `metadata` comes back in its `message_echoes` event; a
        throttle is retried until `deadline` (`call`)."""
        message: dict = {"text": text}
        if metadata:
            message["metadata"] = metadata
        if quick_replies:
            message["quick_replies"] = [
                {"content_type": "text", "title": name[:QUICK_REPLY_TITLE_MAX], "payload": name}
                for name in quick_replies[:QUICK_REPLIES_MAX]
            ]
        self.call(
            "POST",
            "/me/messages",
            {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": message},
            before_retry=before_retry,
            deadline=deadline,
        )

    def set_messenger_profile(self, properties: dict) -> None:
        """Set Messenger Profile properties (`get_started`, `greeting`...); setting the
        same values again changes nothing, so this is safe to repeat."""
        self.call("POST", "/me/messenger_profile", properties, repeatable=True)

    def get_messenger_profile(self, fields: list[str]) -> dict:
        return _first_entry(
            self.call("GET", "/me/messenger_profile?fields=" + ",".join(fields), repeatable=True)
        )

    def subscribed_fields(self) -> list[str]:
        """The webhook fields the page sends our app (`GET /me/subscribed_apps`)."""
        app = _first_entry(self.call("GET", "/me/subscribed_apps", repeatable=True))
        fields = app.get("subscribed_fields")
        return [f for f in fields if isinstance(f, str)] if isinstance(fields, list) else []

    def subscribe(self, fields: list[str]) -> None:
        """Subscribe the app to the page's webhook `fields` (replaces the list; repeatable)."""
        self.call(
            "POST", "/me/subscribed_apps?subscribed_fields=" + ",".join(fields), repeatable=True
        )

    def token_app(self) -> dict:
        """The app this client's token belongs to (`GET /app`: `id`, `name`)."""
        return self.call("GET", "/app", repeatable=True)

    def token_scopes(self, input_token: str) -> list[str]:
        """The permissions granted to `input_token` (`GET /debug_token`; this client must
        hold the app token `APP_ID|APP_SECRET`). The token goes in the query string, as
        Graph wants it: over HTTPS, and never logged by us."""
        from urllib.parse import quote

        answer = self.call("GET", f"/debug_token?input_token={quote(input_token)}", repeatable=True)
        data = answer.get("data")
        scopes = data.get("scopes") if isinstance(data, dict) else None
        return [s for s in scopes if isinstance(s, str)] if isinstance(scopes, list) else []

    def app_page_fields(self, app_id: str) -> list[str] | None:
        """The Page webhook fields subscribed at app level (`GET /APP_ID/subscriptions`,
        app token), or None when the app has no active Page webhook at all."""
        answer = self.call("GET", f"/{app_id}/subscriptions", repeatable=True)
        data = answer.get("data")
        for subscription in data if isinstance(data, list) else []:
            if isinstance(subscription, dict) and subscription.get("object") == "page":
                if subscription.get("active") is False:
                    return None
                fields = subscription.get("fields")
                fields = fields if isinstance(fields, list) else []
                return [f["name"] for f in fields if isinstance(f, dict) and "name" in f]
        return None

    def check_token(self) -> None:
        """Raise `GraphError` unless the page token works (`GET /me`)."""
        self.call("GET", "/me?fields=id", repeatable=True)

    def close(self) -> None:
        self.session.close()


def _first_entry(answer: dict) -> dict:
    """The first object of a Graph listing's `data`, or {} when there is none."""
    data = answer.get("data")
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}

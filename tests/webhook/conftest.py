"""Webhook fixtures: a fake Graph API on loopback and a webhook app with real Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from mimical.app import create_app
from mimical.appkit.dialog_app import close_dialog
from mimical.appkit.resources import close_resources
from mimical.testing.fake_graph import FakeGraphApi
from mimical.testing.servers import wait_for

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
PAGE_TOKEN = "test-page-token"


@pytest.fixture
def graph():
    fake = FakeGraphApi()
    yield fake
    fake.close()


@pytest.fixture
def webhook_settings(chat_settings, graph, redis_url):
    return chat_settings.with_overrides(
        redis_url=redis_url,
        graph_api_url=graph.url,
        fb_app_secret=APP_SECRET,
        fb_verify_token=VERIFY_TOKEN,
        fb_page_access_token=PAGE_TOKEN,
        # Most tests check the dialog's exact replies; tests/webhook/test_privacy.py checks
        # the disclosure that is on by default.
        messenger_disclosure=False,
    )


@pytest.fixture
def queue_prefix() -> str:
    """This test's own Redis keys for the Messenger queue (shared by its app replicas)."""
    return f"test-{uuid.uuid4().hex}:"


@pytest.fixture
def make_app(webhook_settings, personas, queue_prefix):
    apps = []

    def make(components=("webhook",), graph_options=None, **overrides):
        app = create_app(
            webhook_settings.with_overrides(**{"messenger_workers": 2, **overrides}),
            components=components,
            test_config={
                "TESTING": True,
                "MIMICAL_MESSENGER_QUEUE_OPTIONS": {"prefix": queue_prefix},
                # Retries in milliseconds, not seconds.
                "MIMICAL_MESSENGER_GRAPH_OPTIONS": {
                    "backoff_seconds": 0.01,
                    **(graph_options or {}),
                },
            },
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_dialog(app)
        close_resources(app)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def now_ms() -> int:
    """Messenger's `timestamp` of an event sent now (milliseconds since the epoch)."""
    return int(time.time() * 1000)


def message_event(
    psid: str,
    text: str | None = "hi",
    mid: str | None = None,
    sent_at_ms: int | None = None,
    **message,
):
    """A person's message event as Messenger posts it (`timestamp`: now by default)."""
    body = {"mid": mid or f"m_{uuid.uuid4().hex}", **message}
    if text is not None:
        body["text"] = text
    return {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE"},
        "timestamp": sent_at_ms if sent_at_ms is not None else now_ms(),
        "message": body,
    }


def page_payload(*events: dict, field: str = "messaging") -> bytes:
    """A signed-to-be webhook body; `field="standby"` for conversations another app owns."""
    return json.dumps(
        {"object": "page", "entry": [{"id": "PAGE", "time": 1, field: list(events)}]}
    ).encode()


def post_signed(client, body: bytes, secret: str = APP_SECRET):
    return client.post(
        "/webhook",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": signature(body, secret)},
    )


def wait_until_answered(app) -> None:
    """Block until the app's Messenger worker has answered everything queued."""
    messenger = app.extensions.get("mimical_dialog", {}).get("messenger")
    if messenger is not None:
        messenger.join()


def wait_until_silence_ends(app, psid: str) -> None:
    """Block until the persona's silence in `psid`'s conversation has expired (a Page
    admin's message or a handover started it), however slow the machine."""
    queue = app.extensions["mimical_dialog"]["messenger"].queue
    wait_for("the silence to end", lambda: not queue.paused(psid), timeout=30)

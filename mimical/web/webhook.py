"""The Messenger webhook: `GET /webhook` (verification) and `POST /webhook` (events).

Messenger signs every POST with the app secret (`X-Hub-Signature-256: sha256=HMAC`
of the raw body); anything unsigned or wrongly signed gets 403 and is not looked
at. Valid events are queued for `mimical.web.messenger.MessengerWorker` and the
request answers 200 at once, because Messenger retries (and eventually disables)
webhooks that answer slowly.

Run it with the other components through `mimical serve`, or alone:

    create_app(settings, components=["webhook"])
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Blueprint, Flask, request

from mimical.web import error_response, get_settings
from mimical.web.dialog_app import get_messenger

log = logging.getLogger(__name__)

blueprint = Blueprint("webhook", __name__)


def init_app(app: Flask) -> None:
    """Defaults for this component; its resources start on first use (`dialog_app`).

    Whoever runs the app calls `mimical.web.dialog_app.close_dialog(app)` at shutdown.
    """
    # Background threads answering Messenger; a user's messages always share one.
    app.config.setdefault("MIMICAL_WEBHOOK_WORKERS", 8)


def valid_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


@blueprint.get("/webhook")
def verify():
    """Messenger's subscription handshake: echo the challenge if the token matches."""
    settings = get_settings()
    token = request.args.get("hub.verify_token", "")
    if (
        request.args.get("hub.mode") == "subscribe"
        and settings.fb_verify_token
        and hmac.compare_digest(token.encode(), settings.fb_verify_token.encode())
    ):
        return request.args.get("hub.challenge", ""), 200, {"Content-Type": "text/plain"}
    return error_response(403, "forbidden", "webhook verification failed")


@blueprint.post("/webhook")
def receive():
    import orjson

    body = request.get_data()
    if not valid_signature(
        get_settings().fb_app_secret, body, request.headers.get("X-Hub-Signature-256")
    ):
        return error_response(403, "forbidden", "missing or invalid X-Hub-Signature-256")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_response(400, "bad_request", "the body is not JSON")
    if not isinstance(payload, dict) or payload.get("object") != "page":
        return error_response(404, "not_found", "only page subscriptions are handled")
    messenger = get_messenger()
    for entry in payload.get("entry") or []:
        for event in (entry.get("messaging") or []) if isinstance(entry, dict) else []:
            if isinstance(event, dict):
                messenger.submit(event)
    return "EVENT_RECEIVED", 200, {"Content-Type": "text/plain"}

"""The Messenger webhook: `GET /webhook` (verification), `POST /webhook` (events),
`GET /messenger/privacy`, the privacy page App Review asks for (what is kept, how long,
how to delete it), and Meta's data deletion callback `POST /messenger/data-deletion`
with its status pages `GET /messenger/data-deletion/CODE` (`mimical.messenger.data_deletion`).

Messenger signs every POST with the app secret (`X-Hub-Signature-256: sha256=HMAC`
of the raw body); anything unsigned, malformed or wrongly signed gets 403 and is not
looked at. Valid events are stored in the Messenger queue (a Redis Stream with
`REDIS_URL`, see `mimical.messenger.event_queue`) and the request answers 200 at once,
because Messenger retries (and eventually disables) webhooks that answer slowly;
`mimical.messenger.responder.MessengerWorker` answers them. If the queue cannot store
them the answer is 503, and Messenger delivers them again later.

While Graph refuses the Page's messages (a bad token, a lost permission, a policy
block), `/readyz` (served by the `api` component, so in `mimical serve`) fails, and
`mimical_messenger_page_can_send` is 0 in `/metrics` (see `mimical.messenger.page_health`).

Run it with the other components through `mimical serve`, or alone:

    create_app(settings, components=["webhook"])
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

from flask import Blueprint, Flask, render_template, request

from mimical.appkit.component import error_response, get_settings
from mimical.appkit.dialog_app import EXTENSION, get_away_windows, get_engine, get_resource
from mimical.appkit.health import add_readiness_check
from mimical.appkit.metrics import init_metrics
from mimical.appkit.resources import app_resources, get_registry
from mimical.dialog.away import owner_page
from mimical.messenger.page_health import MessengerMetrics
from mimical.messenger.payload import read_payload
from mimical.messenger.responder import MessengerWorker

log = logging.getLogger(__name__)

blueprint = Blueprint("webhook", __name__, template_folder="templates")


def init_app(app: Flask) -> None:
    """Defaults for this component; its worker starts on first use (`get_messenger`).

    Whoever runs the app calls `mimical.appkit.dialog_app.close_dialog(app)` at shutdown.
    """
    # Options of the Redis queue (`RedisEventQueue`: prefix, lease_seconds,
    # claim_idle_seconds) and of the Graph client (`GraphApi`: attempts, backoff).
    app.config.setdefault("MIMICAL_MESSENGER_QUEUE_OPTIONS", {})
    app.config.setdefault("MIMICAL_MESSENGER_GRAPH_OPTIONS", {})
    init_metrics(app)

    def messenger_problem() -> str | None:
        messenger = app_resources(app, EXTENSION).get("messenger")
        return messenger.readiness_problem() if messenger is not None else None

    add_readiness_check(app, messenger_problem)


def get_messenger() -> MessengerWorker:
    """This app's Messenger worker: stores webhook events and, with
    `Settings.messenger_workers` threads, answers them through the Send API."""

    def make(app: Flask) -> MessengerWorker:
        def engine():
            with app.app_context():
                return get_engine()

        settings = get_settings(app)
        return MessengerWorker(
            engine,
            settings,
            metrics=MessengerMetrics(app.extensions.get("mimical_metrics")),
            queue_options=app.config["MIMICAL_MESSENGER_QUEUE_OPTIONS"],
            graph_options=app.config["MIMICAL_MESSENGER_GRAPH_OPTIONS"],
            owner_page=owner_page(settings, get_away_windows(), get_registry()),
        )

    return get_resource("messenger", make)


SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")


def valid_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    # Checked for shape first: compare_digest refuses non-ASCII text with a TypeError.
    if not app_secret or not header or not SIGNATURE.fullmatch(header.lower()):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.lower().removeprefix("sha256="))


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
    # Read once, here: a payload of deliveries and reads starts no worker.
    routing = read_payload(payload, get_settings().fb_app_id)
    if routing:
        get_messenger().store(routing)  # UnavailableError (503) if it cannot store them
    return "EVENT_RECEIVED", 200, {"Content-Type": "text/plain"}


@blueprint.get("/messenger/privacy")
def privacy():
    """What Messenger users' data we keep and for how long; the numbers are the code's."""
    from mimical.corpus.schema import DEFAULT_CONTEXT_TURNS
    from mimical.dialog.sessions import SESSION_TTL_SECONDS
    from mimical.messenger.event_queue import DEDUPE_TTL_SECONDS
    from mimical.messenger.responder import REPLY_STATE_TTL_SECONDS

    settings = get_settings()
    return render_template(
        "webhook/privacy.html",
        pause_minutes=settings.messenger_human_pause_seconds // 60,
        context_turns=DEFAULT_CONTEXT_TURNS,
        session_hours=SESSION_TTL_SECONDS // 3600,
        reply_minutes=REPLY_STATE_TTL_SECONDS // 60,
        dedupe_hours=DEDUPE_TTL_SECONDS // 3600,
        contact=settings.privacy_contact,
    )


@blueprint.post("/messenger/data-deletion")
def data_deletion():
    """Meta's data deletion callback: a form field `signed_request` (400 if malformed,
    403 if not signed with our app secret); answers `{"url", "confirmation_code"}`."""
    from mimical.messenger.data_deletion import SignedRequestError, request_deletion

    signed_request = request.form.get("signed_request", "")
    if not signed_request:
        return error_response(400, "bad_request", "the form field signed_request is missing")
    try:
        answer = request_deletion(get_messenger(), get_settings(), signed_request)
    except SignedRequestError as error:
        code = "forbidden" if error.status == 403 else "bad_request"
        return error_response(error.status, code, str(error))
    return answer, 200


@blueprint.get("/messenger/data-deletion/<code>")
def data_deletion_status(code: str):
    """The human-readable status of one deletion request (no personal data in it)."""
    import datetime

    from mimical.messenger.data_deletion import deletion_status

    record = deletion_status(get_messenger(), code)
    if record is None:
        return error_response(404, "not_found", "no deletion request has this confirmation code")
    requested = datetime.datetime.fromtimestamp(record["requested_at"], datetime.UTC)
    return render_template(
        "webhook/data_deletion.html",
        code=code,
        requested=requested.strftime("%Y-%m-%d %H:%M UTC"),
        record=record,
        contact=get_settings().privacy_contact,
    )

"""Meta's data deletion callback: a person asks Facebook to make our app delete their data.

Meta POSTs a form field `signed_request` to the callback URL (App settings > Basic >
User data deletion > Data deletion callback URL): `<signature>.<payload>`, both
base64url without padding. The payload is JSON, `{"algorithm": "HMAC-SHA256",
"expires": ..., "issued_at": ..., "user_id": "<app-scoped id>"}`, and the signature is
the HMAC-SHA256 of the payload's base64url text keyed with the app secret
(`parse_signed_request`). We answer `{"url": STATUS_URL, "confirmation_code": CODE}`;
the status page at that URL says what was deleted, without any personal data.

Which ids: Meta names the person by their app-scoped id (ASID), while Messenger names
them to the webhook by their Page-scoped id (PSID), which is all we store; the two
differ and no webhook event carries the ASID, so there is no mapping to keep as
messages arrive. At callback time, Graph's ID matching API (`GET /ASID/ids_for_pages`
with the app token) gives the person's PSIDs for the Pages of the app's business
(`page_scoped_ids`); each is forgotten as `%forget` does
(`mimical.messenger.responder.forget_user`: session, queued messages, stored replies,
silence). When Graph cannot match (the app and Page are not in one Business Manager,
the lookup fails), the status page says so: nothing could be found under that id, and
what we keep expires on its own within 24 hours (the privacy page's numbers);
`%forget` in the conversation deletes at once. Replaying a signed request only deletes
again, so `expires` is not enforced.

    status = request_deletion(messenger, settings, signed_request)  # the callback
    record = deletion_status(messenger, code)                       # its status page
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time

from mimical.config import Settings

log = logging.getLogger(__name__)

ALGORITHM = "HMAC-SHA256"
# Where a request's outcome is kept (in the dialog's session store): counts and a date.
STATUS_KEY_PREFIX = "messenger:deletion:"
# How long the status page answers: it holds no personal data, only counts.
STATUS_TTL_SECONDS = 90 * 24 * 3600
CODE_PATTERN = re.compile(r"[0-9a-f]{20}")
BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# Graph answers in a second or two; Meta waits for the callback's answer.
LOOKUP_ATTEMPTS = 2


class SignedRequestError(Exception):
    """A signed request that is malformed (400) or not signed by our app secret (403)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _base64url(text: str) -> bytes:
    # Python's decoder skips characters outside the alphabet: refuse them first.
    if not BASE64URL.fullmatch(text):
        raise SignedRequestError(400, "signed_request is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SignedRequestError(400, "signed_request is not base64url") from None


def parse_signed_request(signed_request: str, app_secret: str) -> dict:
    """The payload of a signed request our app secret signed; `SignedRequestError` else."""
    if not app_secret:
        raise SignedRequestError(403, "the app secret is not configured (MIMICAL_FB_APP_SECRET)")
    parts = signed_request.split(".")
    if len(parts) != 2 or not all(parts) or not signed_request.isascii():
        raise SignedRequestError(400, "signed_request must be <signature>.<payload>")
    signature, encoded_payload = _base64url(parts[0]), parts[1]
    try:
        payload = json.loads(_base64url(encoded_payload))
    except ValueError:
        raise SignedRequestError(400, "the signed_request payload is not JSON") from None
    if not isinstance(payload, dict):
        raise SignedRequestError(400, "the signed_request payload is not a JSON object")
    algorithm = payload.get("algorithm")
    if not isinstance(algorithm, str) or algorithm.upper() != ALGORITHM:
        raise SignedRequestError(400, f"unsupported algorithm {algorithm!r}: {ALGORITHM} only")
    expected = hmac.new(app_secret.encode(), encoded_payload.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise SignedRequestError(403, "the signed_request signature is not our app's")
    user_id = payload.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id.isdigit():
        raise SignedRequestError(400, "the signed_request payload has no user_id")
    return {**payload, "user_id": user_id}


def page_scoped_ids(app_graph, app_scoped_id: str) -> list[str]:
    """The person's PSIDs on the Pages of the app's business (Graph's ID matching API;
    `app_graph` holds the app token `APP_ID|APP_SECRET`)."""
    answer = app_graph.call("GET", f"/{app_scoped_id}/ids_for_pages", repeatable=True)
    data = answer.get("data")
    entries = data if isinstance(data, list) else []
    return [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]


def request_deletion(messenger, settings: Settings, signed_request: str) -> dict:
    """Verify Meta's signed request, delete what is kept about that person, record the
    outcome; returns the callback's answer `{"url", "confirmation_code"}`.

    `messenger` is the `MessengerWorker` (its queue, Graph client and session store)."""
    from mimical.messenger.graph import GraphApi, GraphError
    from mimical.messenger.responder import forget_user

    app_scoped_id = parse_signed_request(signed_request, settings.fb_app_secret)["user_id"]
    record = {"requested_at": int(time.time()), "conversations": 0, "queued_messages": 0}
    try:
        app_id = settings.fb_app_id or str(messenger.graph.token_app().get("id", ""))
        app_graph = GraphApi(
            settings.graph_api_url,
            f"{app_id}|{settings.fb_app_secret}",
            attempts=LOOKUP_ATTEMPTS,
            on_error=messenger.metrics.graph_error,
        )
        try:
            psids = page_scoped_ids(app_graph, app_scoped_id)
        finally:
            app_graph.close()
    except GraphError as error:
        # Graph's message may quote the id: kind and code only.
        log.warning(
            "a data deletion request could not be matched to Messenger users: Graph %s "
            "error (code %s)",
            error.kind,
            error.code,
        )
        record["outcome"] = "not_matched"
    else:
        sessions = messenger.engine.sessions
        for psid in psids:
            record["queued_messages"] += forget_user(messenger.queue, sessions, psid)
        record["conversations"] = len(psids)
        record["outcome"] = "deleted"
    code = secrets.token_hex(10)
    messenger.engine.sessions.save(STATUS_KEY_PREFIX + code, record, STATUS_TTL_SECONDS)
    messenger.metrics.events.labels("deletion_requested").inc()
    url = f"{settings.public_url.rstrip('/')}/messenger/data-deletion/{code}"
    return {"url": url, "confirmation_code": code}


def deletion_status(messenger, code: str) -> dict | None:
    """What a deletion request did (`request_deletion`'s record), or None if unknown."""
    if not CODE_PATTERN.fullmatch(code):
        return None
    return messenger.engine.sessions.load(STATUS_KEY_PREFIX + code)

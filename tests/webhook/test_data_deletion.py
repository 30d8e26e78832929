"""Meta's data deletion callback, over the real webhook, Redis and the fake Graph API.

Signed requests are built as Meta documents them: base64url (no padding) of the
HMAC-SHA256 of the base64url payload, a dot, the payload
`{"algorithm": "HMAC-SHA256", "expires", "issued_at", "user_id"}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from urllib.parse import urlsplit

import pytest

from mimical.dialog.sessions import RedisSessionStore
from mimical.testing.fake_graph import APP_ID
from tests.webhook.conftest import APP_SECRET, message_event, page_payload, post_signed
from tests.webhook.test_privacy import keys_of

APP_SCOPED_ID = "218471"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_request(payload: dict | bytes, secret: str = APP_SECRET) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    encoded = b64url(raw)
    signature = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return f"{b64url(signature)}.{encoded}"


def meta_payload(user_id=APP_SCOPED_ID, algorithm: str = "HMAC-SHA256") -> dict:
    return {
        "algorithm": algorithm,
        "expires": 1291840400,
        "issued_at": 1291836800,
        "user_id": user_id,
    }


def call_back(client, signed: str):
    return client.post("/messenger/data-deletion", data={"signed_request": signed})


@pytest.fixture
def storing_app(make_app):
    """A webhook that only stores events (`MIMICAL_MESSENGER_WORKERS=0`, as the chart
    runs it): what it queued waits until deleted."""
    return make_app(messenger_workers=0, fb_app_id=APP_ID)


def seed_user(redis_url: str, client) -> str:
    """A Messenger user with a session, a stored reply and two queued messages."""
    psid = uuid.uuid4().hex
    sessions = RedisSessionStore(redis_url)
    sessions.save(f"messenger:{psid}", {"state": "chatting", "history": ["my secret"]})
    sessions.save(f"messenger:reply:{psid}:m_1", {"pieces": ["a reply"]}, 3600)
    for text in ("are you there?", "hello?"):
        assert post_signed(client, page_payload(message_event(psid, text))).status_code == 200
    assert len(keys_of(redis_url, psid)) == 3  # session, reply, queued messages
    return psid


def test_a_signed_request_deletes_the_users_data_and_answers_a_status_url(
    storing_app, graph, redis_url
):
    client = storing_app.test_client()
    psid = seed_user(redis_url, client)
    graph.page_ids[APP_SCOPED_ID] = [psid]
    response = call_back(client, signed_request(meta_payload()))
    assert response.status_code == 200
    answer = response.get_json()
    assert set(answer) == {"url", "confirmation_code"}
    assert answer["confirmation_code"].isalnum()
    assert keys_of(redis_url, psid) == []
    assert f"Bearer {APP_ID}|{APP_SECRET}" in graph.authorizations  # the app token asked
    url = urlsplit(answer["url"])
    assert url.path == f"/messenger/data-deletion/{answer['confirmation_code']}"
    status = client.get(url.path)
    assert status.status_code == 200 and status.mimetype == "text/html"
    page = status.get_data(as_text=True)
    assert "Done." in page and "1 Messenger conversation:" in page
    assert "2 messages" in page and answer["confirmation_code"] in page
    assert psid not in page and APP_SCOPED_ID not in page  # no personal data
    assert "Content-Security-Policy" in status.headers


def test_a_person_graph_cannot_match_gets_a_status_that_says_so(storing_app, graph, redis_url):
    client = storing_app.test_client()
    psid = seed_user(redis_url, client)  # not in graph.page_ids: Graph answers 100/33
    response = call_back(client, signed_request(meta_payload(user_id=9876543210)))
    assert response.status_code == 200
    assert len(keys_of(redis_url, psid)) == 3  # nothing of anyone else's deleted
    page = client.get(urlsplit(response.get_json()["url"]).path).get_data(as_text=True)
    assert "could not tell us" in page and "%forget" in page


@pytest.mark.parametrize(
    "signed",
    [
        pytest.param(signed_request(meta_payload(), secret="another-app"), id="other-secret"),
        pytest.param(
            signed_request(meta_payload()).split(".")[0]
            + "."
            + b64url(json.dumps(meta_payload(user_id="1")).encode()),
            id="tampered-payload",
        ),
    ],
)
def test_a_request_not_signed_with_our_secret_is_refused(storing_app, graph, redis_url, signed):
    client = storing_app.test_client()
    psid = seed_user(redis_url, client)
    graph.page_ids[APP_SCOPED_ID] = [psid]
    graph.page_ids["1"] = [psid]
    response = call_back(client, signed)
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"
    assert len(keys_of(redis_url, psid)) == 3


@pytest.mark.parametrize(
    ("signed", "words"),
    [
        (signed_request(meta_payload(algorithm="HMAC-SHA1")), "unsupported algorithm"),
        (signed_request({"user_id": APP_SCOPED_ID}), "unsupported algorithm"),
        (signed_request(meta_payload(user_id="")), "no user_id"),
        (signed_request(meta_payload(user_id="../me")), "no user_id"),
        (signed_request(b"not json"), "not JSON"),
        (signed_request(b"[1, 2]"), "not a JSON object"),
        ("garbage", "<signature>.<payload>"),
        ("a.b.c", "<signature>.<payload>"),
        (".payload", "<signature>.<payload>"),
        ("é.ü", "<signature>.<payload>"),
        ("!!!!.@@@@", "not base64url"),
        ("", "missing"),
    ],
)
def test_a_malformed_signed_request_is_a_400(storing_app, signed, words):
    response = call_back(storing_app.test_client(), signed)
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"
    assert words in response.get_json()["message"]


def test_the_callback_refuses_everything_without_an_app_secret(make_app):
    client = make_app(messenger_workers=0, fb_app_secret="").test_client()
    response = call_back(client, signed_request(meta_payload(), secret=""))
    assert response.status_code == 403 and "MIMICAL_FB_APP_SECRET" in response.get_json()["message"]


@pytest.mark.parametrize("code", ["0123456789abcdef0123", "not-a-code", "A" * 20])
def test_an_unknown_confirmation_code_is_a_404(storing_app, code):
    response = storing_app.test_client().get(f"/messenger/data-deletion/{code}")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"

"""The Messenger webhook against a fake Graph API on loopback and real Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from mimical.dialog.engine import GREETING, HELP, SHOW_ALL_HINT
from mimical.messenger.graph import split_message
from mimical.messenger.responder import NOT_TEXT
from tests.fixtures.chat import PUBLIC
from tests.webhook.conftest import (
    APP_SECRET,
    PAGE_TOKEN,
    VERIFY_TOKEN,
    message_event,
    now_ms,
    page_payload,
    post_signed,
    wait_until_answered,
)


def new_psid() -> str:
    return uuid.uuid4().hex


def test_verification_echoes_the_challenge(client):
    response = client.get(
        "/webhook",
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "12345",
        },
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "12345"


def test_verification_with_a_wrong_token_is_forbidden(client):
    response = client.get(
        "/webhook",
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": "guess",
            "hub.challenge": "12345",
        },
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"


def test_verification_without_a_configured_token_is_forbidden(make_app):
    client = make_app(fb_verify_token="").test_client()
    response = client.get(
        "/webhook",
        query_string={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"},
    )
    assert response.status_code == 403


def test_unsigned_or_badly_signed_posts_are_refused_and_ignored(app, client, graph):
    body = page_payload(message_event(new_psid()))
    unsigned = client.post("/webhook", data=body, content_type="application/json")
    forged = post_signed(client, body, secret="not-the-secret")
    tampered = client.post(
        "/webhook",
        data=body + b" ",
        content_type="application/json",
        headers={"X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    malformed = [
        client.post(
            "/webhook",
            data=body,
            content_type="application/json",
            headers={"X-Hub-Signature-256": header},
        )
        for header in (
            # Non-ASCII made compare_digest raise TypeError: a 500, which Meta retries.
            "sha256=" + "é" * 64,
            "sha256=é",
            "sha256=" + "0" * 63 + "\u00ff",
            "sha256=",
            "sha1=" + "0" * 40,
            "sha256=" + "g" * 64,
            "sha256=" + "0" * 65,
            " ",
            "é",
        )
    ]
    for response in (unsigned, forged, tampered, *malformed):
        assert response.status_code == 403
        assert response.get_json()["error"] == "forbidden"
    # Nothing was queued: the worker was never even started.
    assert "messenger" not in app.extensions.get("mimical_dialog", {})
    assert graph.attempts == 0


def test_message_is_marked_seen_and_answered_with_typing_indicator_first(app, client, graph):
    psid = new_psid()
    response = post_signed(client, page_payload(message_event(psid, "hi")))
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "EVENT_RECEIVED"
    wait_until_answered(app)
    assert graph.actions(psid) == ["mark_seen", "typing_on", "text", "text"]
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]
    # The page token travels in a header (never in a URL that could be logged).
    assert graph.authorizations == {f"Bearer {PAGE_TOKEN}"}
    sent = [r for r in graph.requests if "message" in r]
    assert all(r["messaging_type"] == "RESPONSE" for r in sent)


def test_every_graph_call_carries_the_appsecret_proof(app, client, graph):
    post_signed(client, page_payload(message_event(new_psid(), "hi")))
    wait_until_answered(app)
    expected = hmac.new(APP_SECRET.encode(), PAGE_TOKEN.encode(), hashlib.sha256).hexdigest()
    assert graph.proofs == {expected}


def test_persona_choice_offers_public_personas_as_quick_replies(app, client, graph):
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    greeting, hint = graph.messages(psid)
    assert "quick_replies" not in greeting
    # Only public personas that can chat now: not the private one, not the one building.
    assert hint["quick_replies"] == [{"content_type": "text", "title": PUBLIC, "payload": PUBLIC}]
    # Tapping one sends its title as text and its payload alongside.
    tapped = message_event(psid, "Tiny", quick_reply={"payload": PUBLIC})
    post_signed(client, page_payload(tapped))
    wait_until_answered(app)
    assert graph.texts(psid)[-1].startswith("You are now chatting with Tiny.")
    assert "quick_replies" not in graph.messages(psid)[-1]


def test_a_whole_conversation_reaches_the_model(app, client, graph):
    psid = new_psid()
    for text in ("hi", PUBLIC, "hey, how was your weekend?"):
        post_signed(client, page_payload(message_event(psid, text)))
    wait_until_answered(app)
    texts = graph.texts(psid)
    assert texts[:3] == [
        GREETING,
        SHOW_ALL_HINT,
        'You are now chatting with Tiny. Type "%restart" to pick a new persona.',
    ]
    assert len(texts) == 4 and texts[3].strip()


def test_each_mid_is_answered_once_even_across_replicas(make_app, graph):
    first, second = make_app(), make_app()  # two webhook processes sharing one Redis
    psid, mid = new_psid(), f"m_{uuid.uuid4().hex}"
    body = page_payload(message_event(psid, "hi", mid=mid))
    for app in (first, second, first):
        assert post_signed(app.test_client(), body).status_code == 200
    for app in (first, second):
        wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]


def test_echoes_deliveries_and_reads_are_ignored(app, client, graph):
    psid = new_psid()
    echo = message_event(psid, "sent by the page", is_echo=True)
    delivery = {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE"},
        "delivery": {"mids": ["m_1"], "watermark": 1},
    }
    read = {"sender": {"id": psid}, "recipient": {"id": "PAGE"}, "read": {"watermark": 1}}
    assert post_signed(client, page_payload(echo, delivery, read)).status_code == 200
    wait_until_answered(app)
    assert graph.requests == []


def test_deliveries_and_reads_alone_start_no_worker(app, client, graph):
    """The webhook reads a payload once (`read_payload`): nothing to store, no worker."""
    psid = new_psid()
    delivery = {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE"},
        "delivery": {"mids": ["m_1"], "watermark": 1},
    }
    read = {"sender": {"id": psid}, "recipient": {"id": "PAGE"}, "read": {"watermark": 1}}
    assert post_signed(client, page_payload(delivery, read)).status_code == 200
    assert "messenger" not in app.extensions.get("mimical_dialog", {})
    assert graph.requests == []


def test_get_started_postback_gets_the_greeting_once(app, client, graph):
    psid = new_psid()
    postback = {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE"},
        "timestamp": now_ms(),
        "postback": {"title": "Get Started", "payload": "GET_STARTED"},
    }
    for _ in range(2):  # a redelivery is dropped
        post_signed(client, page_payload(postback))
    wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]


def test_attachments_get_a_text_only_answer(app, client, graph):
    psid = new_psid()
    event = message_event(psid, None, attachments=[{"type": "image", "payload": {}}])
    post_signed(client, page_payload(event))
    wait_until_answered(app)
    assert graph.texts(psid) == [NOT_TEXT]


def test_long_replies_are_split_for_the_send_api(app, client, graph, personas):
    for i in range(30):
        personas.create(f"persona-{i:02d}", public=True, display_name=f"Persona {i} " + "x" * 80)
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "%show all")))
    wait_until_answered(app)
    pieces = graph.texts(psid)
    assert len(pieces) == 2
    assert all(len(piece) <= 2000 for piece in pieces)
    assert pieces[0].startswith("Public personas:") and pieces[1].startswith("- persona-")


def test_split_message_prefers_line_breaks_then_spaces():
    assert split_message("short") == ["short"]
    assert split_message("aaaa\nbbbb", limit=6) == ["aaaa", "bbbb"]
    assert split_message("aaa bbb ccc", limit=8) == ["aaa bbb", "ccc"]
    assert split_message("x" * 10, limit=4) == ["xxxx", "xxxx", "xx"]


def test_bad_json_and_non_page_objects_get_json_errors(client):
    response = post_signed(client, b"{not json")
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"
    response = post_signed(client, json.dumps({"object": "instagram"}).encode())
    assert response.status_code == 404


def test_redis_down_is_a_503_so_messenger_delivers_again_later(make_app, graph):
    from mimical.testing.servers import free_port

    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    psid = new_psid()
    response = post_signed(app.test_client(), page_payload(message_event(psid, "hi")))
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
    assert graph.attempts == 0


def test_without_redis_events_are_answered_from_memory(make_app, graph):
    app = make_app(redis_url="")
    psid, mid = new_psid(), f"m_{uuid.uuid4().hex}"
    client = app.test_client()
    for text in ("hi", "%help"):
        post_signed(client, page_payload(message_event(psid, text)))
    post_signed(client, page_payload(message_event(psid, "%help", mid=mid)))
    post_signed(client, page_payload(message_event(psid, "%help", mid=mid)))  # redelivered
    wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT, HELP, HELP]

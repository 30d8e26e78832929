"""Password guessing, leaks and limits across the chat and the API, on one app."""

from __future__ import annotations

import pytest

from mimical.dialog.engine import PASSWORD_PROMPT, WRONG_PASSWORD
from tests.fixtures.chat import PASSWORD, PRIVATE

LOCKED = f"Too many wrong passwords for {PRIVATE}. Please wait 15 minutes and try again."


def say(client, text, **kwargs):
    return client.post("/chat/messages", json={"text": text}, **kwargs)


def guess_in_chat(app, password, **kwargs) -> list[str]:
    """A new visitor (no cookie) picks the private persona and tries `password`."""
    client = app.test_client()
    assert say(client, PRIVATE, **kwargs).get_json()["replies"] == [PASSWORD_PROMPT]
    return say(client, password, **kwargs).get_json()["replies"]


def test_a_fresh_cookie_does_not_reset_wrong_passwords(make_chat_app):
    app = make_chat_app(components=("chat",))
    assert [guess_in_chat(app, "nope") for _ in range(4)] == [[WRONG_PASSWORD]] * 4
    assert guess_in_chat(app, "nope") == [LOCKED]
    assert guess_in_chat(app, PASSWORD) == [LOCKED]  # even the right one, from a new cookie


def test_a_lockout_reached_through_the_api_carries_over_to_the_chat(make_chat_app):
    app = make_chat_app()
    client = app.test_client()
    wrong = {"X-Chatbot-Password": "nope"}
    statuses = [
        client.get(f"/api/chatbots/{PRIVATE}/model", headers=wrong).status_code for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    assert guess_in_chat(app, PASSWORD) == [LOCKED]


def test_guesses_from_many_addresses_lock_the_persona_but_not_its_owner(
    make_chat_app, chat_settings, personas
):
    proxied = chat_settings.with_overrides(trusted_proxy_hops=1)
    app = make_chat_app(settings=proxied, password_persona_rate_limit="3 per hour")
    client = app.test_client()

    def guess(address, password="nope"):
        headers = {"X-Chatbot-Password": password, "X-Forwarded-For": address}
        return client.get(f"/api/chatbots/{PRIVATE}", headers=headers).status_code

    assert [guess(f"203.0.113.{i}") for i in range(3)] == [401] * 3
    assert guess("198.51.100.7", PASSWORD) == 429  # a new address, the right password
    [locked] = guess_in_chat(app, PASSWORD, headers={"X-Forwarded-For": "192.0.2.1"})
    assert locked.startswith(f"Too many wrong passwords for {PRIVATE}. Please wait 60 minutes")
    # The owner still gets in with the owner token.
    _, token = personas.create("owned", public=False, password="pw")
    for i in range(3):
        guess_owned = {"X-Chatbot-Password": "nope", "X-Forwarded-For": f"203.0.113.{i}"}
        client.get("/api/chatbots/owned", headers=guess_owned)
    owner = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "192.0.2.9"}
    assert client.get("/api/chatbots/owned", headers=owner).status_code == 200


def test_forwarded_addresses_are_ignored_without_trusted_proxies(make_chat_app):
    app = make_chat_app(components=("api",))
    client = app.test_client()
    statuses = [
        client.get(
            f"/api/chatbots/{PRIVATE}/model",
            headers={"X-Chatbot-Password": "nope", "X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]


def test_a_private_persona_still_building_keeps_its_display_name_secret(make_chat_app, personas):
    personas.create("dora", public=False, password="pw", display_name="Dora Secret-Realname")
    client = make_chat_app(components=("chat",)).test_client()
    # Before its password, as for a name nobody has: neither its name nor its phase.
    assert say(client, "dora").get_json()["replies"] == [PASSWORD_PROMPT]


def test_pages_send_security_headers(make_chat_app):
    client = make_chat_app().test_client()
    for path in ("/chat", "/docs"):
        response = client.get(path)
        assert response.status_code == 200
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/healthz").headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/chat/messages", "/webhook", "/getModel"])
def test_small_routes_refuse_large_bodies_unread(make_chat_app, path):
    client = make_chat_app(components=("api", "chat", "webhook")).test_client()
    body = b'{"text": "' + b"a" * (1024 * 1024) + b'"}'
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"
    assert response.headers["Connection"] == "close"

"""The web chat's HTTP side: page, JSON messages, visitor cookie, errors."""

from __future__ import annotations

import pytest

from mimical.dialog.engine import GREETING, PASSWORD_PROMPT, SHOW_ALL_HINT
from tests.fixtures.chat import PASSWORD, PRIVATE


def say(client, text):
    return client.post("/chat/messages", json={"text": text})


def test_a_cookie_is_set_only_once_a_persona_is_picked(client):
    response = client.get("/chat")
    assert response.status_code == 200
    assert b'id="messages"' in response.data
    assert "Set-Cookie" not in response.headers
    assert client.get("/chat/static/chat.js").status_code == 200
    assert "Set-Cookie" not in say(client, "").headers  # the greeting keeps nothing
    cookie = say(client, PRIVATE).headers["Set-Cookie"]
    assert "mimical_chat=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/" in cookie


def test_empty_text_gets_the_greeting(client):
    response = say(client, "")
    assert response.get_json() == {"replies": [GREETING, SHOW_ALL_HINT], "state": "choosing"}


def test_password_state_is_reported_so_the_page_hides_the_input(client):
    client.get("/chat")
    assert say(client, PRIVATE).get_json() == {"replies": [PASSWORD_PROMPT], "state": "password"}
    assert say(client, PASSWORD).get_json()["state"] == "chatting"


def test_each_browser_has_its_own_session(app, client):
    client.get("/chat")
    say(client, PRIVATE)
    other = app.test_client()
    other.get("/chat")
    assert say(other, "").get_json()["state"] == "choosing"


def test_bad_requests_get_json_errors(client):
    response = client.post(
        "/chat/messages", data="text=hi", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 422
    assert response.get_json()["error"] == "invalid_input"
    response = say(client, "x" * 2001)
    assert response.status_code == 422
    assert "2000" in response.get_json()["message"]
    assert client.post("/chat/messages", json={"text": 5}).status_code == 422


@pytest.mark.parametrize(
    ("limits", "cookie"),
    [({"chat_rate_limit": "3 per minute"}, True), ({}, False)],
    ids=["per-visitor", "per-address"],
)
def test_message_rate_is_limited_per_visitor_and_per_address(
    chat_settings, personas, limits, cookie
):
    from mimical.app import create_app
    from mimical.appkit.dialog_app import close_dialog

    overrides = {"chat_address_rate_limit": "3 per minute", **limits}
    if cookie:
        overrides["chat_address_rate_limit"] = "100 per minute"
    settings = chat_settings.with_overrides(**overrides)
    app = create_app(settings, components=["chat"], test_config={"TESTING": True})
    client = app.test_client()
    if cookie:  # a visitor with a session: counted per cookie
        assert say(client, PRIVATE).status_code == 200
    # Without a cookie, nothing is kept: the address is counted.
    assert [say(client, "%help").status_code for _ in range(3)] == [200] * 3
    response = say(client, "%help")
    assert response.status_code == 429
    assert response.get_json()["error"] == "too_many_requests"
    close_dialog(app)

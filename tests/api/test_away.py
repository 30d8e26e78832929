"""PUT/GET/DELETE /api/chatbots/NAME/away: only the owner opens a window, only a bounded
one in the future, and it ends by itself, when closed, or when the password changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mimical.cli import main
from mimical.dialog.away import AWAY_MAX, AwayWindows
from mimical.dialog.sessions import MemorySessionStore
from mimical.orchestration import open_registry
from mimical.testing.servers import wait_for

URL = "/api/chatbots/alice/away"


@pytest.fixture
def tokens(settings) -> dict[str, str]:
    registry = open_registry(settings)
    tokens = {
        name: registry.create(name, public=False, password=f"pw-{name}")[1]
        for name in ("alice", "bob")
    }
    registry.close()
    return tokens


@pytest.fixture
def app(make_app, settings, tokens):
    settings = settings.with_overrides(messenger_page_owner="alice")
    return make_app(settings, components=("api", "away"))


@pytest.fixture
def client(app):
    return app.test_client()


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def put(client, body, token):
    return client.put(URL, json=body, headers={"Authorization": f"Bearer {token}"})


def owner(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_the_owner_opens_reads_and_closes_a_window(client, tokens):
    assert client.get(URL, headers=owner(tokens["alice"])).get_json() == {
        "until": None,
        "page": True,
        "note": None,
    }
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    opened = put(client, {"until": until.isoformat()}, tokens["alice"])
    assert opened.status_code == 200, opened.get_json()
    state = opened.get_json()
    assert datetime.fromisoformat(state["until"]) == until
    assert state["note"].startswith("[Automated reply: alice is away until ")
    assert until.strftime("%H:%M UTC") in state["note"]
    assert client.get(URL, headers=owner(tokens["alice"])).get_json() == state
    closed = client.delete(URL, headers=owner(tokens["alice"]))
    assert closed.status_code == 200 and closed.get_json()["until"] is None
    assert client.get(URL, headers=owner(tokens["alice"])).get_json()["until"] is None


def test_away_answers_are_never_cached(client, tokens):
    """An owner's window (and whether a token works) must not stay in a shared cache."""
    until = iso(timedelta(days=1))
    for response in (
        put(client, {"until": until}, tokens["alice"]),
        client.get(URL, headers=owner(tokens["alice"])),
        client.get(URL, headers=owner("wrong")),
        client.delete(URL, headers=owner(tokens["alice"])),
    ):
        assert response.headers["Cache-Control"] == "no-store"


def test_a_time_zone_offset_is_read_as_given(client, tokens):
    until = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    paris = until.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    state = put(client, {"until": paris}, tokens["alice"]).get_json()
    assert datetime.fromisoformat(state["until"]) == until


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize("token", [None, "wrong", "bob"], ids=["none", "wrong", "other-owner"])
def test_only_the_owner_may_touch_the_window(client, tokens, method, token):
    headers = owner(tokens.get(token, token)) if token else {}
    body = {"until": iso(timedelta(hours=1))}
    response = getattr(client, method)(URL, json=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert client.get(URL, headers=owner(tokens["alice"])).get_json()["until"] is None


def test_unknown_chatbots_answer_401(client, tokens):
    response = client.get("/api/chatbots/nobody/away", headers=owner(tokens["alice"]))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"until": iso(-timedelta(minutes=1))}, "until: the window must end in the future"),
        ({"until": iso(AWAY_MAX + timedelta(hours=1))}, "until: at most 7 days ahead"),
        ({"until": "2026-12-05T18:00:00"}, "until: Input should have timezone info"),
        ({"until": "next friday"}, "until: Input should be a valid datetime"),
        ({"until": 5}, "until:"),
        ({"until": None}, "until:"),
        ({}, "until: Field required"),
        ({"until": iso(timedelta(hours=1)), "reason": "holiday"}, "reason:"),
    ],
    ids=["past", "too-long", "no-zone", "garbage", "number", "null", "missing", "extra"],
)
def test_bad_windows_are_422_json(client, tokens, body, message):
    response = put(client, body, tokens["alice"])
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"] == "invalid_input"
    assert response.get_json()["message"].startswith(message)
    assert client.get(URL, headers=owner(tokens["alice"])).get_json()["until"] is None


def test_not_json_is_415(client, tokens):
    response = client.put(URL, data="until=tomorrow", headers=owner(tokens["alice"]))
    assert response.status_code == 415


def test_the_window_ends_by_itself(client, tokens):
    assert put(client, {"until": iso(timedelta(seconds=2))}, tokens["alice"]).status_code == 200
    wait_for(
        "the away window to end",
        lambda: client.get(URL, headers=owner(tokens["alice"])).get_json()["until"] is None,
        timeout=30,
    )


def test_a_password_change_ends_the_window(client, tokens, settings):
    assert put(client, {"until": iso(timedelta(days=1))}, tokens["alice"]).status_code == 200
    response = client.patch(
        "/api/chatbots/alice", json={"password": "a new one"}, headers=owner(tokens["alice"])
    )
    assert response.status_code == 200, response.get_json()
    assert client.get(URL, headers=owner(tokens["alice"])).get_json()["until"] is None


def test_another_chatbot_is_not_this_pages_owner(client, tokens):
    state = client.get("/api/chatbots/bob/away", headers=owner(tokens["bob"])).get_json()
    assert state["page"] is False


def test_windows_expire_on_the_clock_they_are_read_by(settings, tokens):
    """Past `until` a window is over even if its store still holds it."""
    registry = open_registry(settings)
    alice = registry.get("alice")
    now = [1_000_000.0]
    windows = AwayWindows(MemorySessionStore(), clock=lambda: now[0])
    until = datetime.fromtimestamp(now[0] + 3600, UTC)
    windows.open(alice, until)
    assert windows.until(alice) == until
    now[0] += 3600
    assert windows.until(alice) is None
    registry.close()


def test_the_cli_opens_shows_and_closes_the_window(live_url, client, tokens, monkeypatch, capsys):
    monkeypatch.setenv("MIMICAL_OWNER_TOKEN", tokens["alice"])
    assert main(["away", "alice", "--for", "8h", "--backend", live_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("alice answers your Page until ") and "[Automated reply: " in out
    until = client.get(URL, headers=owner(tokens["alice"])).get_json()["until"]
    hours = (datetime.fromisoformat(until) - datetime.now(UTC)) / timedelta(hours=1)
    assert 7.9 < hours <= 8
    assert main(["away", "alice", "--backend", live_url]) == 0
    assert "answers your Page until" in capsys.readouterr().out
    assert main(["away", "alice", "--off", "--backend", live_url]) == 0
    assert "does not answer your Page" in capsys.readouterr().out
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    assert main(["away", "alice", "--until", until.isoformat(), "--backend", live_url]) == 0
    state = client.get(URL, headers=owner(tokens["alice"])).get_json()
    assert datetime.fromisoformat(state["until"]) == until


@pytest.mark.parametrize(
    ("arguments", "token", "complaint"),
    [
        (["--for", "8h"], "", "set MIMICAL_OWNER_TOKEN"),
        (["--for", "8h"], "wrong", "wrong owner token for 'alice'"),
        (["--for", "soon"], "alice", "--for 'soon': say how long as 90m, 8h or 3d"),
        (["--for", "9d"], "alice", "until: at most 7 days ahead"),
        (["--until", "tomorrow"], "alice", "--until 'tomorrow': not an ISO 8601 time"),
        (["--until", "2020-01-01T00:00Z"], "alice", "the window must end in the future"),
    ],
)
def test_cli_mistakes_are_one_line(
    live_url, tokens, monkeypatch, capsys, arguments, token, complaint
):
    monkeypatch.setenv("MIMICAL_OWNER_TOKEN", tokens.get(token, token))
    assert main(["away", "alice", *arguments, "--backend", live_url]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mimical away: error: ") and complaint in error
    assert "Traceback" not in error

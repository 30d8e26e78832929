"""POST /api/chatbots/NAME/suggestions: drafts from the tiny persona over a real gRPC
model server, the owner-token check, every refused body, and nothing kept of the turns."""

from __future__ import annotations

import logging

import pytest
import redis

from mimical.config import Settings
from mimical.corpus.scrub import Scrubber
from mimical.orchestration import open_registry
from mimical.web.suggestions import Turn, distinct_drafts, model_context
from tests.fixtures.chat import PUBLIC

URL = f"/api/chatbots/{PUBLIC}/suggestions"
TURNS = [
    {"from": "them", "text": "hey! are you coming tonight?"},
    {"from": "me", "text": "maybe, who else is there"},
    {"from": "them", "text": "everyone from work"},
]


@pytest.fixture
def suggest_settings(tmp_path, served_models, redis_url) -> Settings:
    """A home of its own, the shared tiny-model server, and Redis for the rate limits."""
    return Settings(home=tmp_path / "home", model_server=served_models.target, redis_url=redis_url)


@pytest.fixture
def tokens(suggest_settings) -> dict[str, str]:
    """Owner tokens: `tiny` (Ready, served), `other` (Ready), `building` (no model yet)."""
    registry = open_registry(suggest_settings)
    tokens = {}
    for name in (PUBLIC, "other", "building"):
        tokens[name] = registry.create(name, public=False, password="pw-" + name)[1]
    for name in (PUBLIC, "other"):
        registry.update_status(name, phase="Ready", model_version=1, add_version=1)
    registry.update_status("building", phase="Training", progress=0.3)
    registry.close()
    return tokens


@pytest.fixture
def client(make_app, suggest_settings, tokens):
    from mimical.appkit.dialog_app import close_dialog

    app = make_app(suggest_settings, components=("api", "suggestions"))
    yield app.test_client()
    close_dialog(app)


def post(client, body, token, url=URL):
    return client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})


def test_three_distinct_drafts_from_the_persona(client, tokens):
    response = post(client, {"turns": TURNS, "count": 3}, tokens[PUBLIC])
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"  # an owner's drafts
    drafts = response.get_json()["suggestions"]
    assert 1 <= len(drafts) <= 3
    assert len(set(drafts)) == len(drafts) and all(d and d == d.strip() for d in drafts)


def test_count_defaults_to_three_and_one_is_allowed(client, tokens):
    assert len(post(client, {"turns": TURNS}, tokens[PUBLIC]).get_json()["suggestions"]) <= 3
    one = post(client, {"turns": TURNS, "count": 1, "max_chars": 40}, tokens[PUBLIC])
    assert one.status_code == 200 and len(one.get_json()["suggestions"]) <= 1
    assert all(len(draft) <= 40 for draft in one.get_json()["suggestions"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}],
    ids=["none", "wrong", "not-bearer"],
)
def test_only_the_owner_gets_drafts(client, headers):
    response = client.post(URL, json={"turns": TURNS}, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_another_chatbots_token_is_refused(client, tokens):
    response = post(client, {"turns": TURNS}, tokens["other"])
    assert response.status_code == 401
    assert "wrong owner token" in response.get_json()["message"]


def test_unknown_and_unready_chatbots(client, tokens):
    # Unknown names answer as a wrong owner token does: the API names no chatbot it has not.
    unknown = post(client, {"turns": TURNS}, tokens[PUBLIC], url="/api/chatbots/nobody/suggestions")
    assert unknown.status_code == 401 and "owner token" in unknown.get_json()["message"]
    building = post(
        client, {"turns": TURNS}, tokens["building"], url="/api/chatbots/building/suggestions"
    )
    assert building.status_code == 409
    assert "has no model yet (phase Training)" in building.get_json()["message"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"turns": [{"from": "you", "text": "hi"}]}, "turns.0.from"),
        ({"turns": [{"from": "them", "text": ""}]}, "turns.0.text"),
        ({"turns": [{"from": "them", "text": "x" * 2001}]}, "turns.0.text"),
        ({"turns": [{"from": "them"}]}, "turns.0.text"),
        ({"turns": [{"from": "them", "text": "hi", "at": 1}]}, "turns.0.at"),
        ({"turns": [{"from": "them", "text": 5}]}, "turns.0.text"),
        ({"turns": "hi"}, "turns"),
        ({"turns": []}, "turns"),
        ({"turns": [{"from": "them", "text": "hi"}] * 51}, "turns"),
        ({}, "turns"),
        ({"turns": TURNS, "count": 0}, "count"),
        ({"turns": TURNS, "count": 6}, "count"),
        ({"turns": TURNS, "count": "three"}, "count"),
        ({"turns": TURNS, "max_chars": 5000}, "max_chars"),
        ({"turns": TURNS, "persona": "x"}, "persona"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client, tokens, body, where):
    response = post(client, body, tokens[PUBLIC])
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"] == "invalid_input"
    assert response.get_json()["message"].startswith(f"{where}:")


def test_not_json_is_415(client, tokens):
    response = client.post(
        URL, data="turns=hi", headers={"Authorization": f"Bearer {tokens[PUBLIC]}"}
    )
    assert response.status_code == 415
    assert "JSON" in response.get_json()["message"]


def test_drafts_are_rate_limited_per_client_and_chatbot(make_app, suggest_settings, tokens):
    from mimical.appkit.dialog_app import close_dialog

    app = make_app(
        suggest_settings,
        components=("api", "suggestions"),
        suggestions_rate_limit="2 per minute",
    )
    client = app.test_client()
    # Its own address: the limit lives in the session's shared Redis.
    environ = {"REMOTE_ADDR": "127.0.0.77"}
    headers = {"Authorization": f"Bearer {tokens[PUBLIC]}"}
    statuses = [
        client.post(
            URL, json={"turns": TURNS, "count": 1}, headers=headers, environ_base=environ
        ).status_code
        for _ in range(3)
    ]
    close_dialog(app)
    assert statuses == [200, 200, 429]


def test_the_turns_are_neither_stored_nor_logged(
    client, tokens, suggest_settings, redis_url, caplog
):
    marker = "zanzibarquokka"
    turns = [
        {"from": "them", "text": f"the {marker} plan: mail me at {marker}@example.org"},
        {"from": "me", "text": f"ok {marker}, call me on +44 20 7946 0958"},
    ]
    caplog.set_level(logging.DEBUG)
    response = post(client, {"turns": turns, "count": 2}, tokens[PUBLIC])
    assert response.status_code == 200
    assert marker not in caplog.text
    for path in suggest_settings.home.rglob("*"):  # SQLite registry, storage, anything
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path
    store = redis.Redis.from_url(redis_url)
    for key in store.scan_iter():
        assert marker.encode() not in key
        value = store.dump(key) or b""
        assert marker.encode() not in value, key


def test_the_model_reads_scrubbed_turns_in_its_training_layout():
    turns = [
        Turn.model_validate({"from": "them", "text": "one"}),
        Turn.model_validate({"from": "me", "text": "two"}),
        Turn.model_validate({"from": "them", "text": "three"}),
        Turn.model_validate({"from": "them", "text": "mail me: ann@example.org"}),
        Turn.model_validate({"from": "me", "text": "  "}),
    ]
    # Three turns at most, each marked the owner's or another's, a speaker's messages
    # joined; personal data replaced.
    assert model_context(turns, Scrubber()) == "\x1eone\x1dtwo\x1ethree\nmail me: <EMAIL>"
    assert model_context(turns[-1:]) == ""


def test_distinct_drafts_drop_empty_and_repeated_and_ask_once_more():
    answers = iter([["a", " a ", "", "b"], ["b", "c", "d", "e"]])
    asked = []

    def ask(count):
        asked.append(count)
        return next(answers)

    assert distinct_drafts(ask, 4) == ["a", "b", "c", "d"]
    assert asked == [4, 8]  # the top-up asks for twice as many: repeats are common
    stubborn = iter([["x", "x"], ["", "x"]])
    assert distinct_drafts(lambda count: next(stubborn), 2) == ["x"]


def test_the_model_answers_n_candidates_in_one_call(served_models):
    replies = served_models.client.replies(PUBLIC, "hey, how are you?", 4, max_chars=50)
    assert len(replies) == 4 and all(isinstance(reply, str) for reply in replies)
    assert all(len(reply) <= 50 for reply in replies)


def test_the_openapi_document_describes_it(client):
    document = client.get("/openapi.json").get_json()
    operation = document["paths"]["/api/chatbots/{name}/suggestions"]["post"]
    assert operation["security"] == [{"ownerToken": []}]
    assert {"401", "409", "422", "429"} <= set(operation["responses"])
    turn = document["components"]["schemas"]["Turn"]
    assert turn["properties"]["from"]["enum"] == ["me", "them"]
    body = document["components"]["schemas"]["SuggestionsBody"]
    assert body["properties"]["count"]["maximum"] == 5

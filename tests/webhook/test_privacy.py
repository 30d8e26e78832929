"""Disclosure, `%forget` and the privacy page, over the real webhook, Redis and fake Graph."""

from __future__ import annotations

import uuid

import redis

from mimical.cli import main
from mimical.config import Settings
from mimical.dialog.engine import (
    GREETING,
    HELP,
    PASSWORD_PROMPT,
    SHOW_ALL_HINT,
    WRONG_PASSWORD,
)
from mimical.dialog.sessions import RedisSessionStore
from mimical.messenger.responder import FORGOTTEN
from tests.fixtures.chat import PRIVATE, PUBLIC
from tests.webhook.conftest import (
    message_event,
    now_ms,
    page_payload,
    post_signed,
    wait_until_answered,
)
from tests.webhook.test_graph_errors import metric

DISCLOSURE = Settings().messenger_disclosure_text


def new_psid() -> str:
    return uuid.uuid4().hex


def say(app, client, psid: str, text: str) -> None:
    assert post_signed(client, page_payload(message_event(psid, text))).status_code == 200
    wait_until_answered(app)


def keys_of(redis_url: str, psid: str) -> list[str]:
    return sorted(k.decode() for k in redis.Redis.from_url(redis_url).scan_iter(f"*{psid}*"))


def test_the_first_reply_of_a_session_says_it_is_automated(make_app, graph):
    app = make_app(messenger_disclosure=True)  # the default, off elsewhere in these tests
    client = app.test_client()
    psid = new_psid()
    say(app, client, psid, "hi")
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [DISCLOSURE, GREETING, SHOW_ALL_HINT, HELP]
    assert "automated" in DISCLOSURE and "%forget" in DISCLOSURE


def test_the_disclosure_text_is_configurable(make_app, graph):
    app = make_app(messenger_disclosure=True, messenger_disclosure_text="A bot answers here.")
    client = app.test_client()
    psid = new_psid()
    say(app, client, psid, "%help")
    assert graph.texts(psid) == ["A bot answers here.", HELP]


def test_messenger_answers_a_private_name_as_it_answers_a_name_nobody_has(app, client, graph):
    """Over the real webhook: nothing a stranger types tells which private personas exist."""
    for name in (PRIVATE, "nobody-at-all"):
        psid = new_psid()
        for text in (name, name, "a guess"):
            say(app, client, psid, text)
        assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT, PASSWORD_PROMPT, WRONG_PASSWORD]


def test_forget_deletes_the_session_queued_text_and_stored_replies(
    app, client, graph, redis_url, queue_prefix
):
    psid = new_psid()
    for text in ("hi", PUBLIC, "hey, how was your weekend?"):
        say(app, client, psid, text)
    kept = keys_of(redis_url, psid)
    assert f"mimical:messenger:{psid}" in kept  # the session, with the chat's turns
    assert sum(k.startswith(f"mimical:messenger:reply:{psid}:") for k in kept) == 3
    # Hold the worker inside %forget while the user writes again: that text is queued.
    graph.set_action_budget(0)
    forget = message_event(psid, "%forget")
    post_signed(client, page_payload(forget))
    assert graph.wait_holding_action()
    post_signed(client, page_payload(message_event(psid, "still there?")))
    graph.set_action_budget(None)
    wait_until_answered(app)
    assert graph.texts(psid)[-1] == FORGOTTEN
    # Left: the record of the confirmation just sent (an hour), nothing else of theirs.
    assert keys_of(redis_url, psid) == [
        f"mimical:messenger:reply:{psid}:{forget['message']['mid']}"
    ]
    assert metric(client, "mimical_messenger_events_total", "forgotten") == 1
    say(app, client, psid, "hi")  # a newcomer again
    assert graph.texts(psid)[-2:] == [GREETING, SHOW_ALL_HINT]


def test_the_menus_delete_my_data_works_without_redis(make_app, graph):
    app = make_app(redis_url="")
    client = app.test_client()
    psid = new_psid()
    say(app, client, psid, "hi")
    menu = {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE"},
        "timestamp": now_ms(),
        "postback": {
            "mid": f"m_{uuid.uuid4().hex}",
            "title": "Delete my data",
            "payload": "%forget",
        },
    }
    post_signed(client, page_payload(menu))
    wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT, FORGOTTEN]
    say(app, client, psid, "%help")
    assert graph.texts(psid)[-1] == HELP


def test_an_operator_forgets_a_user_from_the_command_line(redis_url, monkeypatch, capsys):
    psid = new_psid()
    sessions = RedisSessionStore(redis_url)
    sessions.save(f"messenger:{psid}", {"state": "chatting", "history": ["secret"]})
    sessions.save(f"messenger:reply:{psid}:m_1", {"pieces": ["a reply"]}, 3600)
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["messenger", "forget", psid]) == 0
    assert keys_of(redis_url, psid) == []
    assert f"Deleted what is kept about Messenger user {psid}" in capsys.readouterr().err


def test_forget_without_redis_says_it_needs_it(monkeypatch, capsys):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("MIMICAL_REDIS_URL", raising=False)
    assert main(["messenger", "forget", "123"]) == 2
    err = capsys.readouterr().err
    assert "set REDIS_URL" in err and "Traceback" not in err


def test_the_privacy_page_says_what_is_kept_and_how_to_delete_it(make_app):
    client = make_app(privacy_contact="privacy@example.com").test_client()
    response = client.get("/messenger/privacy")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for words in ("automated", "24 hours", "60 minutes", "30 minutes", "%forget"):
        assert words in page
    assert "privacy@example.com" in page
    assert "Content-Security-Policy" in response.headers

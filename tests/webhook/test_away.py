"""Away mode on the owner's own Page (`MIMICAL_MESSENGER_PAGE_OWNER`): the persona answers
only inside the owner's window, straight away and with the automated-reply note; outside
it messages are left for the owner, and `%forget` still works. Real Redis, webhook and
model server; the Graph API is the fake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mimical.appkit.dialog_app import get_away_windows
from mimical.messenger.responder import FORGOTTEN
from mimical.testing.servers import wait_for
from tests.fixtures.chat import PUBLIC
from tests.webhook.conftest import message_event, page_payload, post_signed, wait_until_answered
from tests.webhook.test_graph_errors import metric

NOTE_START = "[Automated reply: Tiny is away until "


@pytest.fixture
def app(make_app):
    return make_app(components=("webhook",), messenger_page_owner=PUBLIC)


@pytest.fixture
def client(app):
    return app.test_client()


def say(app, client, psid: str, text: str) -> None:
    assert post_signed(client, page_payload(message_event(psid, text))).status_code == 200
    wait_until_answered(app)


def away_for(app, personas, delta: timedelta) -> None:
    with app.app_context():
        get_away_windows().open(personas.get(PUBLIC), datetime.now(UTC) + delta)


def test_the_owner_present_means_no_answer_at_all(app, client, graph):
    psid = uuid.uuid4().hex
    say(app, client, psid, "hi, are you there?")
    assert graph.requests == []  # not even seen: the owner reads it in the Page inbox
    assert metric(client, "mimical_messenger_events_total", "owner_present") == 1


def test_while_away_the_persona_answers_with_the_note(app, client, graph, personas):
    away_for(app, personas, timedelta(hours=1))
    psid = uuid.uuid4().hex
    say(app, client, psid, "hi, are you there?")
    texts = graph.texts(psid)
    assert len(texts) == 1, texts  # no persona to pick: the owner's answers at once
    note, reply = texts[0].split("\n", 1)
    assert note.startswith(NOTE_START) and note.endswith("their persona answers for them.]")
    assert reply.strip()
    say(app, client, psid, "ok tell me more")
    assert len(graph.texts(psid)) == 2 and graph.texts(psid)[1].startswith(NOTE_START)

    with app.app_context():
        get_away_windows().close(PUBLIC)
    say(app, client, psid, "hello again")
    assert len(graph.texts(psid)) == 2


def test_the_window_closing_by_itself_stops_the_persona(app, client, graph, personas):
    away_for(app, personas, timedelta(seconds=2))
    with app.app_context():
        windows = get_away_windows()
        wait_for("the window to end", lambda: windows.until(personas.get(PUBLIC)) is None, 30)
    psid = uuid.uuid4().hex
    say(app, client, psid, "hi")
    assert graph.texts(psid) == []


def test_forget_works_when_the_owner_is_present(app, client, graph):
    psid = uuid.uuid4().hex
    say(app, client, psid, "%forget")
    assert graph.texts(psid) == [FORGOTTEN]

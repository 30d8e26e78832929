"""The handover protocol: the persona passes conversations to the Page inbox and takes
them back, over the real webhook, Redis and the fake Graph API, with payloads shaped as
Meta documents them (`messaging_handovers`, `standby`, echoes)."""

from __future__ import annotations

import uuid

import pytest

from mimical.dialog.engine import HELP
from mimical.messenger.responder import HANDED_OVER
from tests.webhook.conftest import (
    message_event,
    now_ms,
    page_payload,
    post_signed,
    wait_until_answered,
    wait_until_silence_ends,
)
from tests.webhook.test_graph_errors import metric
from tests.webhook.test_routing import OUR_APP, PAGE_INBOX, admin_echo, say, thread_control

PASS = "/me/pass_thread_control"
TAKE = "/me/take_thread_control"


def new_psid() -> str:
    return uuid.uuid4().hex


def say_in_standby(app, client, psid: str, text: str) -> None:
    """The person writes while another app (the Page inbox) owns the conversation."""
    body = page_payload(message_event(psid, text), field="standby")
    assert post_signed(client, body).status_code == 200
    wait_until_answered(app)


def controls(graph, psid: str) -> list[tuple[str, dict]]:
    return [(path, body) for path, body in graph.thread_control if body["recipient"]["id"] == psid]


def test_asking_for_a_human_passes_the_conversation_and_takes_it_back_later(make_app, graph):
    app = make_app(fb_app_id=OUR_APP, messenger_human_pause_seconds=1)
    client = app.test_client()
    psid = new_psid()
    menu = {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE"},
        "timestamp": now_ms(),
        "postback": {
            "mid": f"m_{uuid.uuid4().hex}",
            "title": "Talk to a person",
            "payload": "%human",
        },
    }
    post_signed(client, page_payload(menu))
    wait_until_answered(app)
    assert graph.texts(psid) == [HANDED_OVER]
    [(path, body)] = controls(graph, psid)
    assert path == PASS and body["target_app_id"] == PAGE_INBOX
    say_in_standby(app, client, psid, "%help")  # the inbox owns it: silence
    assert graph.texts(psid) == [HANDED_OVER] and len(controls(graph, psid)) == 1
    wait_until_silence_ends(app, psid)  # the next message takes the conversation back
    say_in_standby(app, client, psid, "%help")
    assert graph.texts(psid) == [HANDED_OVER, HELP]
    assert [path for path, _ in controls(graph, psid)] == [PASS, TAKE]
    assert metric(client, "mimical_messenger_events_total", "handed_over") == 1
    say(app, client, psid, "%help")  # ours again: no more protocol calls
    assert len(controls(graph, psid)) == 2 and graph.texts(psid)[-1] == HELP


def test_a_person_writing_while_an_admin_answers_goes_to_the_inbox_until_done(make_app, graph):
    app = make_app(fb_app_id=OUR_APP)
    client = app.test_client()
    psid = new_psid()
    post_signed(client, page_payload(admin_echo(psid, app_id=int(PAGE_INBOX))))
    say(app, client, psid, "thanks!")
    say(app, client, psid, "one more thing")
    assert graph.texts(psid) == []
    [(path, body)] = controls(graph, psid)  # passed once
    assert path == PASS and body["target_app_id"] == PAGE_INBOX
    # The admin moves the conversation to Done: the inbox passes it back to our app.
    back = thread_control(psid, "pass_thread_control", OUR_APP, PAGE_INBOX)
    post_signed(client, page_payload(back))
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [HELP]
    assert len(controls(graph, psid)) == 1  # given back: nothing to take


def test_restart_takes_a_handed_over_conversation_back_at_once(app, client, graph):
    psid = new_psid()
    say(app, client, psid, "%human")
    say_in_standby(app, client, psid, "%restart")
    assert [path for path, _ in controls(graph, psid)] == [PASS, TAKE]
    assert graph.texts(psid)[0] == HANDED_OVER and len(graph.texts(psid)) > 1


@pytest.mark.parametrize("refused", [PASS, TAKE])
def test_where_routing_refuses_the_persona_only_stays_silent(make_app, graph, refused):
    app = make_app(messenger_human_pause_seconds=1)
    client = app.test_client()
    graph.fail_posts[refused] = (403, 10, 2018300)  # "no permission for this action"
    psid = new_psid()
    say(app, client, psid, "%human")
    assert graph.texts(psid) == [HANDED_OVER]
    say(app, client, psid, "%help")  # silent while a person may answer
    wait_until_silence_ends(app, psid)
    say_in_standby(app, client, psid, "%help")  # the owner answers standby: not us
    assert graph.texts(psid) == [HANDED_OVER]
    errors = metric(client, "mimical_messenger_graph_errors_total", kind="page_blocked", code="10")
    assert errors >= 1


def test_without_an_inbox_app_id_no_protocol_call_is_made(make_app, graph):
    app = make_app(messenger_inbox_app_id="")
    client = app.test_client()
    psid = new_psid()
    say(app, client, psid, "%human")
    post_signed(client, page_payload(admin_echo(psid)))
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [HANDED_OVER] and graph.thread_control == []


def test_our_own_take_of_the_thread_does_not_silence_the_persona(make_app, graph):
    app = make_app(fb_app_id=OUR_APP)
    client = app.test_client()
    psid = new_psid()
    ours = thread_control(psid, "take_thread_control", OUR_APP, PAGE_INBOX)
    post_signed(client, page_payload(ours))
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [HELP]

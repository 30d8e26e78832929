"""Conversation routing: standby events, a Page admin answering by hand, thread control.

Payloads are shaped as Meta documents them (webhook events `messages` with
`is_echo`, `messaging_handovers`, `standby`); the webhook, Redis and the Graph API
(the fake) are real.
"""

from __future__ import annotations

import uuid

from mimical.dialog.engine import GREETING, HELP, SHOW_ALL_HINT
from tests.webhook.conftest import (
    message_event,
    page_payload,
    post_signed,
    wait_until_answered,
    wait_until_silence_ends,
)
from tests.webhook.test_graph_errors import metric

OUR_APP = "1234567890"
# The Page inbox's app id, as Meta's handover protocol names it.
PAGE_INBOX = "263902037430900"


def new_psid() -> str:
    return uuid.uuid4().hex


def admin_echo(psid: str, text: str = "Hi, Sam here from the Page team!", **message) -> dict:
    """What the webhook gets when someone replies to `psid` from the Page inbox."""
    body = {"is_echo": True, "mid": f"m_{uuid.uuid4().hex}", "text": text, **message}
    return {"sender": {"id": "PAGE"}, "recipient": {"id": psid}, "timestamp": 2, "message": body}


def thread_control(psid: str, kind: str, new_owner: str, previous_owner: str) -> dict:
    control = {"new_owner_app_id": new_owner, "previous_owner_app_id": previous_owner}
    return {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE"},
        "timestamp": 3,
        kind: {**control, "metadata": ""},
    }


def say(app, client, psid: str, text: str) -> None:
    assert post_signed(client, page_payload(message_event(psid, text))).status_code == 200
    wait_until_answered(app)


def test_messages_in_standby_are_read_but_never_answered(app, client, graph):
    psid = new_psid()
    body = page_payload(message_event(psid, "hello?"), field="standby")
    assert post_signed(client, body).status_code == 200
    wait_until_answered(app)
    assert graph.requests == []
    assert metric(client, "mimical_messenger_events_total", "standby") == 1


def test_an_admin_reply_silences_the_persona_in_that_conversation_only(app, client, graph):
    psid, other = new_psid(), new_psid()
    say(app, client, psid, "hi")
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]
    post_signed(client, page_payload(admin_echo(psid, app_id=int(PAGE_INBOX))))
    say(app, client, psid, "%help")
    say(app, client, other, "%help")
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]  # not talked over
    assert graph.actions(psid) == ["mark_seen", "typing_on", "text", "text"]
    assert graph.texts(other) == [HELP]
    assert metric(client, "mimical_messenger_events_total", "paused") == 1


def test_an_admin_reply_in_standby_silences_too(app, client, graph):
    psid = new_psid()
    post_signed(client, page_payload(admin_echo(psid), field="standby"))
    say(app, client, psid, "%help")
    assert graph.texts(psid) == []


def test_the_silence_ends_after_the_configured_time(make_app, graph):
    app = make_app(messenger_human_pause_seconds=1)
    client = app.test_client()
    psid = new_psid()
    post_signed(client, page_payload(admin_echo(psid)))
    say(app, client, psid, "%help")
    assert graph.texts(psid) == []
    wait_until_silence_ends(app, psid)
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [HELP]


def test_restart_ends_the_silence(app, client, graph):
    psid = new_psid()
    post_signed(client, page_payload(admin_echo(psid)))
    say(app, client, psid, "%help")
    say(app, client, psid, "%restart")
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT, HELP]


def test_thread_taken_and_passed_back_silences_then_frees_the_persona(make_app, graph):
    app = make_app(fb_app_id=OUR_APP)
    client = app.test_client()
    psid = new_psid()
    taken = thread_control(psid, "take_thread_control", PAGE_INBOX, OUR_APP)
    post_signed(client, page_payload(taken))
    say(app, client, psid, "%help")  # queued before the routing moved it to standby
    assert graph.texts(psid) == []
    # Passed on to yet another app: still not ours.
    elsewhere = thread_control(psid, "pass_thread_control", "555", PAGE_INBOX)
    post_signed(client, page_payload(elsewhere, field="standby"))
    say(app, client, psid, "%help")
    assert graph.texts(psid) == []
    back = thread_control(psid, "pass_thread_control", OUR_APP, "555")
    post_signed(client, page_payload(back))
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [HELP]


def test_our_own_echoes_never_silence_the_persona(make_app, graph):
    app = make_app(fb_app_id=OUR_APP)
    client = app.test_client()
    psid = new_psid()
    ours = [
        admin_echo(psid, "a reply of ours", metadata="mimical:m_1:0"),
        admin_echo(psid, "sent by our app, untagged", app_id=int(OUR_APP)),
    ]
    post_signed(client, page_payload(*ours))
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [HELP]


def test_silences_work_without_redis_too(make_app, graph):
    app = make_app(redis_url="")
    client = app.test_client()
    psid = new_psid()
    post_signed(client, page_payload(admin_echo(psid)))
    say(app, client, psid, "%help")
    say(app, client, psid, "%restart")
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]

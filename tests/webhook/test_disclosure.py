"""The automated-reply disclosure reaches every person before any automated reply: when
their first message is a sticker, and again when a person of the Page answered in
between (the human's words were not the persona's, and the persona's are not a human's).
Over the real webhook, queue and worker, with Redis and without it.
"""

from __future__ import annotations

import pytest

from mimical.config import Settings
from mimical.dialog.engine import GREETING, HELP, SHOW_ALL_HINT
from mimical.messenger.responder import NOT_TEXT
from tests.webhook.conftest import (
    message_event,
    page_payload,
    post_signed,
    wait_until_answered,
    wait_until_silence_ends,
)
from tests.webhook.test_routing import admin_echo, new_psid, say

DISCLOSURE = Settings().messenger_disclosure_text
WITH_AND_WITHOUT_REDIS = pytest.mark.parametrize("redis_url", [None, ""], ids=["redis", "memory"])


def disclosing_app(make_app, redis_url, **overrides):
    if redis_url is not None:
        overrides["redis_url"] = redis_url
    return make_app(messenger_disclosure=True, **overrides)


@WITH_AND_WITHOUT_REDIS
def test_a_sticker_first_gets_the_disclosure_once(make_app, graph, redis_url):
    app = disclosing_app(make_app, redis_url)
    client = app.test_client()
    psid = new_psid()
    sticker = message_event(psid, text=None, attachments=[{"type": "image"}])
    post_signed(client, page_payload(sticker))
    wait_until_answered(app)
    say(app, client, psid, "hi")
    assert graph.texts(psid) == [DISCLOSURE, NOT_TEXT, GREETING, SHOW_ALL_HINT]


@WITH_AND_WITHOUT_REDIS
def test_the_disclosure_comes_again_after_a_person_of_the_page_answered(make_app, graph, redis_url):
    app = disclosing_app(make_app, redis_url, messenger_human_pause_seconds=1)
    client = app.test_client()
    psid = new_psid()
    say(app, client, psid, "%help")
    say(app, client, psid, "%help")
    post_signed(client, page_payload(admin_echo(psid)))  # a person answers by hand
    wait_until_silence_ends(app, psid)
    say(app, client, psid, "%help")
    assert graph.texts(psid) == [DISCLOSURE, HELP, HELP, DISCLOSURE, HELP]

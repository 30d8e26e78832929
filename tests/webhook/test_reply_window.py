"""Meta's reply window: throttled replies are retried until it closes, never after, and a
backlog older than it is not answered late. Each test sends the fault (Graph's
business-use-case throttle, a message whose timestamp is long past) through the real
webhook, queue (Redis) and worker to the fake Graph API, and counts what went out.
"""

from __future__ import annotations

import time

import pytest

from mimical.dialog.engine import GREETING, HELP, SHOW_ALL_HINT
from mimical.messenger.payload import incoming, sent_at
from tests.webhook.conftest import message_event, page_payload, post_signed, wait_until_answered
from tests.webhook.test_graph_errors import metric, new_psid
from tests.webhook.test_privacy import keys_of

# Retries in milliseconds: a throttle retried many times stays a fast test.
FAST_RETRIES = {"max_backoff_seconds": 0.02}


@pytest.mark.parametrize("code", [80006, 80001, 613])
def test_a_throttle_is_retried_past_the_attempt_limit_within_the_window(make_app, graph, code):
    """Seven refusals, more than the five tries of any other temporary error."""
    app = make_app(graph_options=FAST_RETRIES)
    client = app.test_client()
    graph.fail_next = [(400, code)] * 7
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "%help")))
    wait_until_answered(app)
    assert graph.texts(psid) == [HELP]
    assert metric(client, "mimical_messenger_sends_total", "sent") == 1
    assert (
        metric(client, "mimical_messenger_graph_errors_total", kind="temporary", code=str(code))
        == 7
    )


def test_a_throttle_outlasting_the_window_is_not_sent_late(make_app, graph):
    app = make_app(messenger_reply_window_seconds=3, graph_options=FAST_RETRIES)
    client = app.test_client()
    graph.fail_next = [(400, 80006)] * 100_000  # throttled for good
    psid = new_psid()
    started = time.monotonic()
    post_signed(client, page_payload(message_event(psid, "%help")))
    wait_until_answered(app)
    assert graph.texts(psid) == []
    assert time.monotonic() - started < 30  # given up at the window's end, not hours later
    assert metric(client, "mimical_messenger_sends_total", "expired") == 1
    assert metric(client, "mimical_messenger_sends_total", "failed") == 0


def test_a_backlog_older_than_the_window_is_counted_not_answered(make_app, graph):
    """Messages queued during an outage longer than the window: no late replies, no
    `seen` marks; the fresh message after them is answered."""
    window = 60
    app = make_app(messenger_reply_window_seconds=window)
    client = app.test_client()
    psid = new_psid()
    stale_ms = int((time.time() - window - 5) * 1000)
    stale = [message_event(psid, f"old {n}", sent_at_ms=stale_ms) for n in range(3)]
    post_signed(client, page_payload(*stale, message_event(psid, "%help")))
    wait_until_answered(app)
    assert graph.texts(psid) == [HELP]
    assert graph.actions(psid).count("mark_seen") == 1
    assert metric(client, "mimical_messenger_events_total", "expired") == 3


def test_a_late_forget_still_deletes_what_is_kept(make_app, graph, redis_url):
    """No late reply, but a deletion request is honoured however late it is taken."""
    window = 60
    app = make_app(messenger_reply_window_seconds=window)
    client = app.test_client()
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert keys_of(redis_url, psid)  # the dialog session, the reply's record
    stale_ms = int((time.time() - window - 5) * 1000)
    post_signed(client, page_payload(message_event(psid, "%forget", sent_at_ms=stale_ms)))
    wait_until_answered(app)
    assert keys_of(redis_url, psid) == []
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]


def test_events_carry_when_they_were_sent():
    event = message_event("psid", "hi", sent_at_ms=1_767_225_600_123)
    assert incoming(event).sent_at == pytest.approx(1_767_225_600.123)
    assert sent_at({"timestamp": "soon"}) is None and sent_at({}) is None

"""Graph API failures, as the fake Graph API answers them, by error code."""

from __future__ import annotations

import logging
import uuid

import pytest

from mimical.dialog.engine import GREETING, HELP, SHOW_ALL_HINT
from tests.fixtures.services import wait_for
from tests.webhook.conftest import (
    PAGE_TOKEN,
    message_event,
    page_payload,
    post_signed,
    wait_until_answered,
)


def new_psid() -> str:
    return uuid.uuid4().hex


def metric(client, name: str, outcome: str | None = None) -> float:
    """A sample's value from `/metrics` (0 when absent)."""
    label = f'{{outcome="{outcome}"}}' if outcome else ""
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(f"{name}{label} "):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize(
    "failure",
    [
        (400, 4),
        (400, 32),
        (400, 613),
        (400, 1200),
        (500, 2),
        (503, 1200),
        429,
    ],
    ids=str,
)
def test_rate_limits_and_temporary_errors_are_retried(app, client, graph, failure):
    graph.fail_next = [failure, failure]
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "%help")))
    wait_until_answered(app)
    assert graph.texts(psid) == [HELP]
    assert graph.attempts == 2 + 3  # two failed sends; mark_seen, typing_on, the reply
    assert metric(client, "mimical_messenger_sends_total", "sent") == 1


def test_a_5xx_without_a_graph_error_is_not_sent_twice(app, client, graph):
    # Graph may have delivered it: resending could show the user the same text twice.
    graph.fail_next = [502]
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert graph.texts(psid) == [SHOW_ALL_HINT]  # the greeting's fate is unknown
    assert metric(client, "mimical_messenger_sends_total", "ambiguous") == 1


@pytest.fixture
def echoing(app, client, graph, monkeypatch):
    """Messenger echoes each delivered piece to the webhook (the page subscribed to
    `message_echoes`); a first answered message shows the webhook that echoes flow."""
    from mimical.web import messenger

    monkeypatch.setattr(messenger, "ECHO_WAIT_SECONDS", 1.0)
    graph.echo = lambda body: post_signed(client, body)
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "%help")))
    wait_until_answered(app)
    assert graph.texts(psid) == [HELP]
    with app.app_context():
        from mimical.web.dialog_app import get_messenger

        queue = get_messenger().queue
    wait_for("echoes to flow", lambda: queue.echoed("any piece") is not None, timeout=10.0)
    return queue


def test_an_ambiguous_send_that_never_arrived_is_sent_again_once_echoes_tell(
    app, client, graph, echoing
):
    graph.fail_next = [502]  # not delivered, and Graph cannot say so
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]  # no echo came: sent again
    assert metric(client, "mimical_messenger_sends_total", "ambiguous") == 0


def test_an_ambiguous_send_that_arrived_is_not_sent_twice(app, client, graph, echoing):
    graph.fail_next = [("delivered", 502)]  # delivered, then the answer got lost
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]  # its echo came: not again
    assert metric(client, "mimical_messenger_sends_total", "ambiguous") == 0


@pytest.mark.parametrize("failure", [(400, 551), (400, 10, 2018278), (400, 100, 2018001)], ids=str)
def test_an_unreachable_user_is_dropped_with_a_metric(app, client, graph, failure):
    psid = new_psid()
    graph.fail_recipients[psid] = failure
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert graph.texts(psid) == []
    # mark_seen and typing_on, one try of the greeting, and the hint is not even tried.
    assert graph.attempts == 3
    assert metric(client, "mimical_messenger_sends_total", "unreachable") == 1


def test_a_bad_page_token_alarms_once_and_fails_readiness_until_a_send_works(
    make_app, graph, caplog
):
    app = make_app(components=("api", "webhook"))  # as `mimical serve` runs them
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    graph.bad_token = True
    with caplog.at_level(logging.ERROR, logger="mimical.web.messenger"):
        for _ in range(3):
            post_signed(client, page_payload(message_event(new_psid(), "hi")))
        wait_until_answered(app)
    alarms = [r for r in caplog.records if "page access token" in r.getMessage()]
    assert len(alarms) == 1 and alarms[0].levelno == logging.ERROR
    assert PAGE_TOKEN not in caplog.text
    assert metric(client, "mimical_messenger_page_token_ok") == 0
    assert metric(client, "mimical_messenger_sends_total", "bad_token") == 3
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "unavailable",
        "message": "not ready: Graph rejects the page access token",
    }

    graph.bad_token = False  # an operator put in a new token
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]
    assert client.get("/readyz").status_code == 200
    assert metric(client, "mimical_messenger_page_token_ok") == 1

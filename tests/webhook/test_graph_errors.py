"""Graph API failures, as the fake Graph API answers them, by error code."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from mimical.dialog.engine import GREETING, HELP, SHOW_ALL_HINT
from mimical.messenger import responder
from mimical.messenger.graph import GraphApi
from mimical.messenger.webhook import get_messenger
from mimical.testing.servers import free_port, wait_for
from tests.fixtures.metrics import scrape
from tests.webhook.conftest import (
    PAGE_TOKEN,
    message_event,
    page_payload,
    post_signed,
    wait_until_answered,
)


def new_psid() -> str:
    return uuid.uuid4().hex


def ready_on_metrics_port(app):
    """The metrics port's `/readyz`: 503 with why the app is not ready."""
    from werkzeug.test import Client

    from mimical.appkit.metrics import metrics_wsgi

    return Client(metrics_wsgi(app)).get("/readyz")


def metric(client, name: str, outcome: str | None = None, **labels: str) -> float:
    """A sample's value from `/metrics` (0 when absent)."""
    labels = {"outcome": outcome, **labels} if outcome else labels
    # Prometheus' text format sorts the labels by name.
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    label = "{" + pairs + "}" if labels else ""
    for line in scrape(client.application).splitlines():
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
        (400, 1),
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
def echoing(app, client, graph):
    """Messenger echoes each delivered piece to the webhook (the page subscribed to
    `message_echoes`); a first answered message shows the webhook that echoes flow."""
    graph.echo = lambda body: post_signed(client, body)
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "%help")))
    wait_until_answered(app)
    assert graph.texts(psid) == [HELP]
    with app.app_context():
        queue = get_messenger().queue
    wait_for("echoes to flow", lambda: queue.echoed("any piece") is not None, timeout=10.0)
    return queue


def test_an_ambiguous_send_that_never_arrived_is_sent_again_once_echoes_tell(
    app, client, graph, echoing, monkeypatch
):
    # No echo can come for a piece that was never delivered: the worker waits in vain.
    monkeypatch.setattr(responder, "ECHO_WAIT_SECONDS", 1.0)
    graph.fail_next = [502]  # not delivered, and Graph cannot say so
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]  # no echo came: sent again
    assert metric(client, "mimical_messenger_sends_total", "ambiguous") == 0


def test_an_ambiguous_send_that_arrived_is_not_sent_twice(app, client, graph, echoing, monkeypatch):
    # The worker stops waiting when the echo comes: a loaded machine may take long.
    monkeypatch.setattr(responder, "ECHO_WAIT_SECONDS", 120.0)
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
    with caplog.at_level(logging.ERROR, logger="mimical.messenger.responder"):
        for _ in range(3):
            post_signed(client, page_payload(message_event(new_psid(), "hi")))
        wait_until_answered(app)
    alarms = [r for r in caplog.records if "page access token" in r.getMessage()]
    assert len(alarms) == 1 and alarms[0].levelno == logging.ERROR
    assert PAGE_TOKEN not in caplog.text
    assert metric(client, "mimical_messenger_page_token_ok") == 0
    assert metric(client, "mimical_messenger_sends_total", "bad_token") == 3
    assert client.get("/readyz").status_code == 503
    # Why: on the metrics port only, for operators.
    assert ready_on_metrics_port(app).get_json() == {
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


def test_code_2_is_retried_once(app, client, graph):
    graph.fail_next = [(500, 2)]
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "%help")))
    wait_until_answered(app)
    assert graph.texts(psid) == [HELP]
    assert (
        metric(client, "mimical_messenger_graph_errors_total", None, kind="temporary", code="2")
        == 1
    )


def test_code_2_twice_drops_the_user_who_may_have_blocked_the_page(app, client, graph):
    # Meta: code 2 "might also [mean] a customer has blocked your business".
    psid = new_psid()
    graph.fail_recipients[psid] = (500, 2)
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert graph.texts(psid) == []
    # mark_seen, typing_on and the greeting, each tried twice; the hint is not even tried.
    assert graph.attempts == 6
    assert metric(client, "mimical_messenger_sends_total", "unreachable") == 1


@pytest.mark.parametrize(
    "failure",
    [(400, 10, 2018336), (400, 200, 2018028), (400, 230), (400, 368, 1390008), (400, 1, 99)],
    ids=str,
)
def test_lost_permissions_and_policy_blocks_stop_the_page_with_an_alarm(
    make_app, graph, caplog, failure
):
    app = make_app(components=("api", "webhook"))
    client = app.test_client()
    with caplog.at_level(logging.ERROR):
        for _ in range(2):
            psid = new_psid()
            graph.fail_recipients[psid] = failure
            post_signed(client, page_payload(message_event(psid, "hi")))
            wait_until_answered(app)
    assert graph.texts() == []
    assert graph.attempts == 2 * 3  # mark_seen, typing_on, the greeting: none retried
    alarms = [r for r in caplog.records if "Graph refuses the Page's messages" in r.getMessage()]
    assert len(alarms) == 1 and "pages_messaging" in alarms[0].getMessage()
    code = str(failure[1])
    assert (
        metric(client, "mimical_messenger_graph_errors_total", kind="page_blocked", code=code) == 6
    )
    assert metric(client, "mimical_messenger_sends_total", "page_blocked") == 2
    assert metric(client, "mimical_messenger_page_can_send") == 0
    assert client.get("/readyz").status_code == 503
    response = ready_on_metrics_port(app)
    assert "not ready: Graph refuses the Page's messages" in response.get_json()["message"]

    psid = new_psid()  # the permission is back (App Review passed, say)
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT]
    assert metric(client, "mimical_messenger_page_can_send") == 1
    assert client.get("/readyz").status_code == 200


def business_usage(call_count: int, regain_minutes: int = 0) -> dict[str, str]:
    """Graph's usage header for Messenger's business use case."""
    usage = {
        "type": "messenger",
        "call_count": call_count,
        "total_cputime": 1,
        "total_time": 1,
        "estimated_time_to_regain_access": regain_minutes,
    }
    return {"X-Business-Use-Case-Usage": json.dumps({"111": [usage]})}


def test_high_usage_spaces_the_senders_calls_out(make_app, graph):
    app = make_app(graph_options={"usage_pause_seconds": 0.4})
    client = app.test_client()
    graph.usage_headers = business_usage(call_count=100)
    psid = new_psid()
    post_signed(client, page_payload(message_event(psid, "hi")))
    wait_until_answered(app)
    arrivals = [r["received_at"] for r in graph.requests]
    assert len(arrivals) == 4  # mark_seen, typing_on, greeting, hint
    assert all(b - a >= 0.35 for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert metric(client, "mimical_messenger_graph_usage_percent") == 100


def test_throttled_access_waits_as_long_as_graph_says(graph):
    api = GraphApi(graph.url, PAGE_TOKEN)
    graph.usage_headers = business_usage(call_count=100, regain_minutes=2)
    api.check_token()
    assert 115 < api.seconds_until_allowed() <= 120
    api.close()


def test_usage_headers_below_the_threshold_or_malformed_change_nothing(graph):
    api = GraphApi(graph.url, PAGE_TOKEN)
    graph.usage_headers = {"X-App-Usage": json.dumps({"call_count": 40, "total_time": 12})}
    api.check_token()
    assert api.usage_percent == 40 and api.seconds_until_allowed() == 0
    graph.usage_headers = {"X-Business-Use-Case-Usage": "{not json", "X-Page-Usage": "[1]"}
    api.check_token()
    assert api.usage_percent == 40  # no usage read: the last one stands
    api.close()


def test_the_responders_readyz_fails_while_the_page_cannot_send(
    webhook_settings, personas, queue_prefix, graph
):
    """`mimical messenger respond` builds no web app; its metrics port still says why it
    cannot answer, and shows the Page's state."""
    import urllib.error
    import urllib.request

    from mimical.messenger.cli import Responder

    settings = webhook_settings.with_overrides(messenger_workers=1, metrics_port=free_port())
    responder = Responder(settings, {"prefix": queue_prefix})
    probe = f"http://127.0.0.1:{settings.metrics_port}"
    try:
        with urllib.request.urlopen(f"{probe}/readyz") as response:
            assert response.status == 200
        psid = new_psid()
        graph.fail_recipients[psid] = (400, 10, 2018336)  # pages_messaging gone
        responder.worker.submit(json.loads(page_payload(message_event(psid, "hi"))))
        responder.worker.join()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{probe}/readyz")
        assert refused.value.code == 503
        message = json.loads(refused.value.read())["message"]
        assert message.startswith("not ready: Graph refuses the Page's")
        with urllib.request.urlopen(f"{probe}/metrics") as response:
            assert b"mimical_messenger_page_can_send 0.0" in response.read()
    finally:
        responder.close()

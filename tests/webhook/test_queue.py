"""The durable Messenger queue: order per user across replicas, nothing lost to kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid

import pytest

from mimical.dialog.engine import GREETING, HELP, NOW_CHATTING, SHOW_ALL_HINT
from mimical.testing.servers import free_port, stop_server, wait_for, wait_for_port
from tests.fixtures.chat import PUBLIC
from tests.webhook.conftest import (
    APP_SECRET,
    PAGE_TOKEN,
    message_event,
    page_payload,
    post_signed,
    signature,
    wait_until_answered,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHATTING = NOW_CHATTING.format(name="Tiny")


def new_psid() -> str:
    return uuid.uuid4().hex


def test_one_users_messages_are_answered_in_order_across_replicas(make_app, graph):
    """A `%restart` sent to replica B while replica A still computes a model reply for the
    message before it is answered after that reply, and is not undone by it."""
    first, second = make_app(), make_app()  # two webhook processes sharing one Redis
    users = [new_psid() for _ in range(4)]
    for text, replica in (
        ("tiny", first),
        ("how was your weekend?", first),
        ("%restart", second),
        ("%help", second),
    ):
        for psid in users:
            assert (
                post_signed(
                    replica.test_client(), page_payload(message_event(psid, text))
                ).status_code
                == 200
            )
    for app in (first, second):
        wait_until_answered(app)
    for psid in users:
        texts = graph.texts(psid)
        assert len(texts) == 5, texts
        assert texts[0] == CHATTING and texts[2:] == [GREETING, SHOW_ALL_HINT, HELP]
        assert texts[1] not in (GREETING, SHOW_ALL_HINT, HELP, CHATTING)
    with first.app_context():
        from mimical.appkit.dialog_app import get_engine

        assert {get_engine().state("messenger", psid) for psid in users} == {"choosing"}


@pytest.fixture
def start_replica(chat_settings, personas, graph, redis_url, queue_prefix):
    """`start()` runs a webhook replica in its own process; all are stopped at the end."""
    processes = []
    env = {
        **os.environ,
        "MIMICAL_HOME": str(chat_settings.home),
        "REDIS_URL": redis_url,
        "MIMICAL_MODEL_SERVER": chat_settings.model_server,
        "MIMICAL_GRAPH_API_URL": graph.url,
        "MIMICAL_FB_APP_SECRET": APP_SECRET,
        "MIMICAL_FB_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
        "MIMICAL_MESSENGER_DISCLOSURE": "false",  # the tests count the dialog's replies
    }

    def start(workers: int = 2, redis: str = redis_url) -> tuple[subprocess.Popen, str]:
        """A replica with `workers` answering threads; on another `redis` (a database of
        its own), the queue's default keys, as `mimical messenger respond` uses."""
        options = {"prefix": queue_prefix} if redis == redis_url else {}
        # A killed replica's users are taken over after about five seconds, not twenty.
        options.update(lease_seconds=5, claim_idle_seconds=1)
        config = {"MIMICAL_MESSENGER_QUEUE_OPTIONS": options}
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.webhook.webhook_process", str(port), json.dumps(config)],
            cwd=ROOT,
            env={**env, "MIMICAL_MESSENGER_WORKERS": str(workers), "REDIS_URL": redis},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its gunicorn worker dies with it in a killpg
        )
        processes.append(process)
        wait_for_port(port, process, timeout=120)
        return process, f"http://127.0.0.1:{port}/webhook"

    start.env = env
    yield start
    for process in processes:
        if process.poll() is None:
            stop_server(process)


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_a_killed_worker_loses_nothing_it_acknowledged(start_replica, graph):
    """kill -9 a replica in the middle of its queue: another one answers every
    acknowledged message exactly once, each user's in order."""
    conversation = ["hi", "%help", PUBLIC, "how are you?", "%restart", "%help"]
    expected = [GREETING, SHOW_ALL_HINT, HELP, CHATTING, None, GREETING, SHOW_ALL_HINT, HELP]
    users = [new_psid() for _ in range(3)]
    doomed, url = start_replica()
    # Two events get their sender actions (mark_seen, typing_on); the next one is held
    # for good, so the replica is stuck mid-queue when it is killed, however slow CI is.
    graph.set_action_budget(4)
    for text in conversation:
        for psid in users:
            assert post(url, page_payload(message_event(psid, text))) == 200
    assert graph.wait_holding_action(timeout=120)
    assert graph.wait_for_texts(2, timeout=120)
    os.killpg(doomed.pid, signal.SIGKILL)  # gunicorn and its worker, as a pod dies
    doomed.wait()
    answered_before = len(graph.texts())
    assert answered_before < len(users) * len(expected)  # work was left to take over

    _, url = start_replica()  # claims the dead replica's pending events
    graph.set_action_budget(None)
    assert graph.wait_for_texts(len(users) * len(expected), timeout=120)
    # One more message each: a user's messages are answered in order, so its reply shows
    # every earlier one finished, and no duplicate of them can still come.
    for psid in users:
        assert post(url, page_payload(message_event(psid, "%help"))) == 200
    assert graph.wait_for_texts(len(users) * (len(expected) + 1), timeout=120)
    for psid in users:
        texts = graph.texts(psid)
        assert len(texts) == len(expected) + 1 and texts[-1] == HELP, texts
        texts = texts[:-1]
        for text, want in zip(texts, expected, strict=True):
            assert text == want if want is not None else text not in expected


def test_a_webhook_that_only_acknowledges_leaves_answers_to_responders(
    start_replica, graph, redis_url, tmp_path
):
    """MIMICAL_MESSENGER_WORKERS=0 stores events only; `mimical messenger respond` in
    another process answers them, in order, and shows what it sent in its metrics."""
    # The responder uses the queue's default keys: a Redis database of its own.
    queue_url = redis_url.rsplit("/", 1)[0] + "/5"
    import redis

    redis.Redis.from_url(queue_url).flushdb()
    _, url = start_replica(workers=0, redis=queue_url)
    users = [new_psid() for _ in range(2)]
    for text in ("hi", "%help"):
        for psid in users:
            assert post(url, page_payload(message_event(psid, text))) == 200
    assert redis.Redis.from_url(queue_url).xlen("mimical:messenger:events") == 4  # stored

    metrics_port = free_port()
    responder = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "mimical"),
            "messenger",
            "respond",
            "--threads",
            "2",
            "--metrics-port",
            str(metrics_port),
        ],
        env={**start_replica.env, "REDIS_URL": queue_url},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "responder.log").open("wb"),
    )
    try:
        assert graph.wait_for_texts(len(users) * 3, timeout=120)
        for psid in users:
            assert graph.texts(psid) == [GREETING, SHOW_ALL_HINT, HELP]
        wait_for_port(metrics_port, responder, timeout=60)

        def sends_counted() -> bool:
            # The count follows Graph's answer: the fake Graph API can hold a text first.
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                return (
                    'mimical_messenger_sends_total{outcome="sent"} 6.0' in response.read().decode()
                )

        wait_for("the responder to count its six sends", sends_counted)
    finally:
        responder.terminate()
        assert responder.wait(timeout=60) == 0
    log = (tmp_path / "responder.log").read_text()
    assert "Traceback" not in log and "answering Messenger events" in log


def test_redelivered_events_are_claimed_once_even_after_their_answer(make_app, graph):
    app = make_app()
    psid, mid = new_psid(), f"m_{uuid.uuid4().hex}"
    body = page_payload(message_event(psid, "%help", mid=mid))
    post_signed(app.test_client(), body)
    wait_until_answered(app)
    post_signed(app.test_client(), body)  # Messenger thought we were slow
    wait_until_answered(app)
    assert graph.texts(psid) == [HELP]

"""`mimical messenger setup` against the fake Graph API's Messenger Profile."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mimical.cli import main
from mimical.messenger.cli import PERSISTENT_MENU
from mimical.testing.fake_graph import APP_FIELDS, APP_ID
from tests.webhook.conftest import APP_SECRET, PAGE_TOKEN


@pytest.fixture
def page_env(monkeypatch, graph):
    monkeypatch.setenv("MIMICAL_GRAPH_API_URL", graph.url)
    monkeypatch.setenv("MIMICAL_FB_PAGE_ACCESS_TOKEN", PAGE_TOKEN)
    monkeypatch.setenv("MIMICAL_FB_APP_SECRET", APP_SECRET)


def test_setup_sets_get_started_greeting_and_webhook_fields_once(page_env, graph, capsys):
    assert main(["messenger", "setup", "--greeting", "Hi {{user_first_name}}!"]) == 0
    assert graph.profile == {
        "get_started": {"payload": "GET_STARTED"},
        "greeting": [{"locale": "default", "text": "Hi {{user_first_name}}!"}],
        "persistent_menu": PERSISTENT_MENU,
    }
    assert graph.subscribed_fields == APP_FIELDS
    err = capsys.readouterr().err
    assert f"The page token belongs to app {APP_ID}" in err
    assert "The page token has pages_messaging, pages_manage_metadata, pages_show_list" in err
    assert "The app's webhook is subscribed to messages" in err
    assert "Set the page's Get Started button" in err and "Subscribed the webhook" in err
    # Again: nothing to change, nothing posted.
    assert main(["messenger", "setup", "--greeting", "Hi {{user_first_name}}!"]) == 0
    assert graph.profile_posts == 1
    err = capsys.readouterr().err
    assert "already set" in err and "already sends the webhook its events" in err
    proof = hmac.new(APP_SECRET.encode(), PAGE_TOKEN.encode(), hashlib.sha256).hexdigest()
    assert graph.proofs == {proof}


@pytest.mark.parametrize(
    "missing", [["pages_messaging"], ["pages_manage_metadata", "pages_show_list"]]
)
def test_setup_names_the_permissions_the_token_lacks(page_env, graph, capsys, missing):
    graph.scopes = [scope for scope in graph.scopes if scope not in missing]
    assert main(["messenger", "setup"]) == 2
    err = capsys.readouterr().err
    assert f"the page access token lacks {missing[0]} (to " in err
    assert all(scope in err for scope in missing) and "Traceback" not in err
    assert graph.profile_posts == 0 and graph.subscribed_fields == []


def test_setup_names_the_fields_the_app_level_webhook_lacks(page_env, graph, capsys):
    graph.app_fields = ["messages", "messaging_postbacks"]  # as many apps were set up
    assert main(["messenger", "setup"]) == 2
    err = capsys.readouterr().err
    assert (
        "the app's webhook is not subscribed to message_echoes, messaging_handovers, standby" in err
    )
    assert "both the app and the page" in err


def test_setup_says_when_the_app_has_no_page_webhook_at_all(page_env, graph, capsys):
    graph.app_fields = None
    assert main(["messenger", "setup"]) == 2
    assert "the app has no active webhook for Pages" in capsys.readouterr().err


def test_setup_refuses_a_token_of_another_app(page_env, graph, monkeypatch, capsys):
    monkeypatch.setenv("MIMICAL_FB_APP_ID", "42")
    assert main(["messenger", "setup"]) == 2
    err = capsys.readouterr().err
    assert f"belongs to app {APP_ID} (mimical test), not MIMICAL_FB_APP_ID=42" in err


def test_setup_quotes_graphs_own_words_on_a_permission_error(page_env, graph, capsys):
    # The profile cannot be written (pages_manage_metadata revoked since the token was made).
    graph.fail_posts["/me/messenger_profile"] = (400, 200)
    assert main(["messenger", "setup"]) == 2
    err = capsys.readouterr().err
    assert "Graph refused to read or set the Messenger profile (needs pages_manage_metadata)" in err
    assert "code 200" in err and "fake Graph error 200" in err and "Traceback" not in err


def test_setup_without_a_token_says_which_variable(page_env, monkeypatch, capsys):
    monkeypatch.delenv("MIMICAL_FB_PAGE_ACCESS_TOKEN")
    assert main(["messenger", "setup"]) == 2
    err = capsys.readouterr().err
    assert "MIMICAL_FB_PAGE_ACCESS_TOKEN is not set" in err and "Traceback" not in err


def test_setup_with_an_expired_token_is_a_clear_error(page_env, graph, capsys):
    graph.bad_token = True
    assert main(["messenger", "setup"]) == 2
    err = capsys.readouterr().err
    assert "Graph rejected the page access token" in err and "code 190" in err
    assert PAGE_TOKEN not in err


def test_setup_refuses_an_overlong_greeting(page_env, graph, capsys):
    assert main(["messenger", "setup", "--greeting", "x" * 161]) == 2
    assert "--greeting must have 1 to 160 characters" in capsys.readouterr().err
    assert graph.profile_posts == 0


def test_respond_without_redis_says_it_needs_it(page_env, monkeypatch, capsys):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("MIMICAL_REDIS_URL", raising=False)
    assert main(["messenger", "respond"]) == 2
    err = capsys.readouterr().err
    assert "set REDIS_URL" in err and "Traceback" not in err


def test_respond_refuses_zero_threads(page_env, capsys):
    assert main(["messenger", "respond", "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


def test_serve_that_would_never_answer_messenger_refuses_to_start(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MIMICAL_HOME", str(tmp_path))
    monkeypatch.setenv("MIMICAL_MESSENGER_WORKERS", "0")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("MIMICAL_REDIS_URL", raising=False)
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "MIMICAL_MESSENGER_WORKERS=0" in err and "REDIS_URL" in err and "Traceback" not in err

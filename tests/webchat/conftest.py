"""Web chat fixtures: the chat component on a real loopback HTTP server."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from mimical.web import create_app
from mimical.web.dialog_app import close_dialog
from tests.serving.fixtures import *  # noqa: F403 (shared chat fixtures)


@pytest.fixture
def app(chat_settings, personas):
    app = create_app(chat_settings, components=["chat"], test_config={"TESTING": True})
    yield app
    close_dialog(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_url(app):
    """The app served over HTTP on a free loopback port, for the browser."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()

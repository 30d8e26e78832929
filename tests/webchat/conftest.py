"""Web chat fixtures: the chat component (served on a port by `live_url`, tests/fixtures/web.py)."""

from __future__ import annotations

import pytest

from mimical.app import create_app
from mimical.appkit.dialog_app import close_dialog


@pytest.fixture
def app(chat_settings, personas):
    app = create_app(chat_settings, components=["chat"], test_config={"TESTING": True})
    yield app
    close_dialog(app)


@pytest.fixture
def client(app):
    return app.test_client()

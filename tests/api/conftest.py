"""Fixtures for the backend API tests: an app on temporary storage, a client, exports.

Builds started by these apps run in real worker processes; `app` stops them at
teardown. Tests that only need a chatbot to exist register it straight in the
registry (`registered`) instead of training one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mimical.app import create_app
from mimical.appkit.resources import close_resources, get_registry, get_storage
from mimical.chatbot import Phase
from mimical.config import Settings

# Small enough to test the 413 path quickly; real exports get the default.
TEST_UPLOAD_MAX_BYTES = 4 * 1024 * 1024
TEST_CONFIG = {"TESTING": True}
# Settings overrides: limits no test reaches unless it lowers one.
TEST_LIMITS = {
    "password_rate_limit": "1000/minute",
    "build_rate_limit": "1000/minute",
    "upload_rate_limit": "1000/minute",
    # Some tests race uploads on purpose (tests/hostile checks the one-slot default).
    "uploads_at_once": 8,
    "uploads_at_once_per_client": 8,
}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", upload_max_bytes=TEST_UPLOAD_MAX_BYTES)


@pytest.fixture
def make_app():
    """Build apps on given settings (with `TEST_LIMITS` and then `overrides`); all are
    closed at teardown."""
    apps = []

    def make(settings: Settings, components=("api",), test_config=None, **overrides):
        app = create_app(
            settings.with_overrides(**{**TEST_LIMITS, **overrides}),
            components=components,
            test_config={**TEST_CONFIG, **(test_config or {})},
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_resources(app)


@pytest.fixture
def app(make_app, settings):
    return make_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def registry(app):
    with app.app_context():
        yield get_registry()


@pytest.fixture
def storage(app):
    with app.app_context():
        yield get_storage()


@pytest.fixture
def registered(registry, storage) -> Callable[..., str]:
    """Register a chatbot as if its build finished: record + model files in storage.

    Returns the owner token.
    """

    def make(name: str, *, public: bool = True, password: str | None = None, ready=True) -> str:
        _, token = registry.create(name, public=public, password=password)
        if ready:
            storage.put_bytes(f"models/{name}/1/saved_model.pb", b"graph")
            registry.update_status(
                name, phase=Phase.READY, progress=1, model_version=1, add_version=1
            )
        return token

    return make


@pytest.fixture(scope="session")
def export_zip(sample_export, tmp_path_factory) -> Path:
    """A small Messenger export as the .zip people upload."""
    directory = sample_export("messenger", 40)
    target = tmp_path_factory.mktemp("upload") / "messenger-export"
    return Path(shutil.make_archive(str(target), "zip", directory))


def wait_for_phase(
    client, name: str, phases: set[str], timeout: float = 240.0, until=None, **kwargs
):
    """Poll GET /api/chatbots/NAME until its phase is in `phases` or `until(body)`."""
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        body = client.get(f"/api/chatbots/{name}", **kwargs).get_json()
        if body.get("phase") in phases or (until is not None and until(body)):
            return body
        time.sleep(0.25)
    raise AssertionError(f"{name} did not reach {phases} in {timeout}s; last: {body}")

"""Fixtures for the chat side (serving, dialog, webhook, web chat), imported by their conftests.

`served_models` is one real model server per test session (per xdist worker) over a
model base holding the model fixtures' `tiny_model` under the persona names the tests use; each
test gets its own registry (`personas`) in a temporary home.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from mimical.config import Settings

__all__ = ["chat_settings", "make_chat_app", "personas", "served_models"]

PUBLIC = "tiny"
PRIVATE = "secret"
PASSWORD = "open sesame"
BUILDING = "building"


@pytest.fixture(scope="session")
def served_models(tmp_path_factory, tiny_model):
    """Our gRPC model server over copies of the tiny model named `tiny` and `secret`."""
    from mimical.serving.client import ModelClient
    from mimical.serving.server import ModelServer

    model_base = tmp_path_factory.mktemp("served-models")
    for name in (PUBLIC, PRIVATE):
        shutil.copytree(tiny_model.export_dir, model_base / name / "1")
    server = ModelServer(str(model_base), poll_seconds=0.2).start()
    client = ModelClient(server.target)
    yield SimpleNamespace(
        server=server,
        client=client,
        model_base=model_base,
        target=server.target,
        export_dir=tiny_model.export_dir,
    )
    client.close()
    server.stop()


@pytest.fixture
def chat_settings(tmp_path, served_models) -> Settings:
    """Embedded settings in a fresh home, pointed at the shared model server."""
    return Settings(home=tmp_path / "home", model_server=served_models.target)


@pytest.fixture
def personas(chat_settings):
    """A registry with a public, a password-protected and a not-yet-built persona."""
    from mimical.orchestration import open_registry

    registry = open_registry(chat_settings)
    registry.create(PUBLIC, public=True, display_name="Tiny")
    registry.create(PRIVATE, public=False, password=PASSWORD, display_name="Secret Agent")
    registry.create(BUILDING, public=True)
    for name in (PUBLIC, PRIVATE):
        registry.update_status(name, phase="Ready", model_version=1, add_version=1)
    registry.update_status(BUILDING, phase="Training", progress=0.4)
    return registry


@pytest.fixture
def make_chat_app(chat_settings, personas):
    """`make(components=("api", "chat"), settings=chat_settings, **overrides)` → a test
    app over the personas on `settings` with `overrides`, its dialog and resources closed
    after the test."""
    from mimical.web import create_app
    from mimical.web.dialog_app import close_dialog
    from mimical.web.resources import close_resources

    apps = []

    def make(components=("api", "chat"), settings=chat_settings, **overrides):
        app = create_app(
            settings.with_overrides(**overrides),
            components=components,
            test_config={"TESTING": True},
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_dialog(app)
        close_resources(app)

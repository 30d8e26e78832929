"""Per-app chat resources shared by the `webhook`, `chat`, `suggestions` and `away` components.

Each Flask app gets one model connection (the configured model server, or one
started in-process in embedded mode) and one `DialogEngine` on the app's registry
(`resources.get_registry()`, which builds no orchestrator), created on first use and
kept in `app.extensions["mimical_dialog"]`; the webhook keeps its Messenger worker
there too (`mimical.messenger.webhook.get_messenger`), and the away windows both the API
and Messenger read (`get_away_windows`). `close_dialog(app)` stops them (tests, shutdown).
"""

from __future__ import annotations

from flask import Flask

from mimical.appkit.component import get_settings
from mimical.appkit.resources import (
    app_resources,
    get_password_tries,
    get_registry,
    shared_resource,
)
from mimical.dialog.away import AwayWindows
from mimical.dialog.sessions import open_session_store

EXTENSION = "mimical_dialog"


def get_resource(name: str, make):
    """This app's `name` chat resource, made once by `make(app)` (thread-safe)."""
    return shared_resource(name, make, EXTENSION)


def get_models():
    """The app's `ModelConnection` (`.client` is the gRPC `ModelClient`)."""
    from mimical.serving.connect import connect_models

    return get_resource("models", lambda app: connect_models(get_settings(app)))


def get_engine():
    def make(app: Flask):
        from mimical.dialog import create_engine

        return create_engine(
            get_settings(app),
            get_models().client,
            get_registry(),
            password_tries=get_password_tries(),
        )

    return get_resource("engine", make)


def close_dialog(app: Flask) -> None:
    """Finish queued Messenger work, then close the model connection."""
    resources = app_resources(app, EXTENSION)
    messenger = resources.pop("messenger", None)
    if messenger is not None:
        messenger.close()
    models = resources.pop("models", None)
    if models is not None:
        models.close()
    resources.clear()


def get_away_windows() -> AwayWindows:
    """This app's windows, shared by its API and Messenger workers."""
    return shared_resource("away", lambda app: AwayWindows(open_session_store(get_settings(app))))

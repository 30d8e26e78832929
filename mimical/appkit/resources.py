"""Per-app shared resources: storage, registry, orchestrator, password tries.

Every Flask app made by `create_app` gets its own instances, created on first use
and kept in `app.extensions["mimical"]` (nothing global, so tests can run several
apps side by side). Any component may call these helpers inside a request or an
app context; `close_resources(app)` stops background work at shutdown. The registry
comes from `open_registry` on its own: an app that only chats (the webhook pods)
never builds an orchestrator.

App config knobs (set through `create_app(test_config=...)`):

- `MIMICAL_TRAIN_OPTIONS`: keyword arguments for `train_persona` (tests: tiny epochs).
- `MIMICAL_ON_DEPLOYED`: `callable(name, version)` run when a version is stored
  (`mimical serve` points it at the in-process model server).

Limits and other settings come from the app's `Settings` (`get_settings`), never
from app config.
"""

from __future__ import annotations

import ipaddress
import threading

from flask import Flask, current_app, request

from mimical.appkit.component import get_settings
from mimical.dialog.sessions import PasswordTries
from mimical.orchestration import Orchestrator, open_orchestrator, open_registry
from mimical.registry import Registry
from mimical.storage import Storage, open_storage

# Reentrant: making one resource may get another (the orchestrator needs the storage,
# the dialog engine the registry).
_lock = threading.RLock()


def app_resources(app: Flask, extension: str = "mimical") -> dict:
    return app.extensions.setdefault(extension, {})


def shared_resource(name: str, make, extension: str = "mimical"):
    """The current app's `name` resource, made once by `make(app)` (thread-safe).

    `extension` names the `app.extensions` dict it is kept in, so each component
    can close its own resources (`mimical.appkit.dialog_app` keeps its own).
    """
    app = current_app._get_current_object()
    resources = app_resources(app, extension)
    if name not in resources:
        with _lock:
            if name not in resources:
                resources[name] = make(app)
    return resources[name]


def get_storage() -> Storage:
    def make(app: Flask) -> Storage:
        settings = get_settings(app)
        return open_storage(settings.storage_root, settings)

    return shared_resource("storage", make)


def get_registry() -> Registry:
    """The chatbot registry of this app's mode (SQLite embedded, Chatbot resources on k8s)."""
    return shared_resource("registry", lambda app: open_registry(get_settings(app)))


def get_orchestrator() -> Orchestrator:
    def make(app: Flask) -> Orchestrator:
        return open_orchestrator(
            get_settings(app),
            get_storage(),
            get_registry(),
            on_deployed=app.config.get("MIMICAL_ON_DEPLOYED"),
            train_options=app.config.get("MIMICAL_TRAIN_OPTIONS"),
        )

    return shared_resource("orchestrator", make)


def get_password_tries() -> PasswordTries:
    """Wrong-password counts shared by the API and every chat channel of this app."""

    return shared_resource("password_tries", lambda app: PasswordTries(get_settings(app)))


# An IPv6 client is counted by its /64: one subscriber gets at least that many addresses,
# so counting each one would give a single client 2^64 fresh limits.
IPV6_CLIENT_PREFIX = 64


def client_address() -> str:
    """Who sent this request, for counting: the peer, or the client `ProxyFix` trusted
    (an IPv6 one by its /64 network)."""
    address = request.remote_addr or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address}"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is an IPv4 client
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{ip}/{IPV6_CLIENT_PREFIX}', strict=False)}"
    return f"address:{ip}"


def close_resources(app: Flask) -> None:
    """Stop builds and background threads this app started, then close the registry."""
    resources = app_resources(app)
    metrics_server = resources.pop("metrics_server", None)
    if metrics_server is not None:
        metrics_server.shutdown()
        metrics_server.server_close()
    for name in ("orchestrator", "registry"):  # the orchestrator uses the registry
        resource = resources.pop(name, None)
        if resource is not None:
            resource.close()

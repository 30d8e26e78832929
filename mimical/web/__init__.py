"""The Flask app factory behind every HTTP service.

One factory, several components: `api` (the backend), `webhook`
(Messenger) and `chat` (the web chat page). The embedded `mimical serve` runs all
of them in one process; in Kubernetes `services/backend` and `services/webhook`
each run the factory with their own subset. Each component module exposes a
`blueprint` and an `init_app(app)` that creates its per-app resources.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mimical.config import Settings
from mimical.errors import MimicalError

if TYPE_CHECKING:
    from flask import Flask

# Flask is imported in the functions: `mimical --help` imports this package (for
# `mimical.web.cli`) and should not pay for Flask.

COMPONENTS = {
    "api": "mimical.web.api",
    "webhook": "mimical.web.webhook",
    "chat": "mimical.web.chat",
}


def error_response(status: int, code: str, message: str):
    """The one error shape every endpoint answers with."""
    from flask import jsonify

    return jsonify(error=code, message=message), status


def create_app(
    settings: Settings | None = None,
    components: Iterable[str] = tuple(COMPONENTS),
    test_config: dict | None = None,
) -> Flask:
    from flask import Flask
    from werkzeug.exceptions import HTTPException

    app = Flask(__name__)
    app.config["MIMICAL_SETTINGS"] = settings or Settings.from_env()
    app.config["MAX_CONTENT_LENGTH"] = app.config["MIMICAL_SETTINGS"].upload_max_bytes
    app.config.update(test_config or {})

    @app.errorhandler(MimicalError)
    def handle_mimical_error(error: MimicalError):
        return error_response(error.http_status, error.code, str(error))

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        response, status = error_response(error.code or 500, code, error.description or error.name)
        # Keep protocol headers werkzeug adds (Allow on 405, Retry-After), not its HTML type.
        response.headers.extend(
            (name, value) for name, value in error.get_headers() if name != "Content-Type"
        )
        return response, status

    for name in components:
        module = importlib.import_module(COMPONENTS[name])
        module.init_app(app)
        app.register_blueprint(module.blueprint)
    return app


def get_settings() -> Settings:
    from flask import current_app

    return current_app.config["MIMICAL_SETTINGS"]

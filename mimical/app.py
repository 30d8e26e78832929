"""The Flask app factory behind every HTTP service, above `mimical.web` and `mimical.messenger`.

One factory, several components: `api` (the backend), `suggestions`, `away`, `webhook`
(Messenger, `mimical.messenger.webhook`) and `chat` (the web chat page). The embedded
`mimical serve` runs all of them in one process; in Kubernetes `services/backend` and
`services/webhook` each run the factory with their own subset. Each component module exposes a
`blueprint` and an `init_app(app)` that creates its per-app resources.

What every component gets from the factory:

- request bodies are capped at `Settings.body_max_bytes` (413 JSON, read no
  further, connection closed); upload routes raise their own cap to
  `upload_max_bytes` (`mimical.web.api`);
- security headers on every response, a Content-Security-Policy on HTML pages, and
  HSTS on responses over HTTPS (as the trusted proxy reports it);
- 5xx errors say only that a service is unavailable (their detail goes to the log);
- client addresses from `Settings.trusted_proxy_hops` reverse proxies (werkzeug's
  `ProxyFix`), so rate limits count real clients behind an ingress;
- a chatbot name in the URL (`<name>`) is checked (`validate_name`, 422) before any view,
  limit or lookup sees it;
- JSON bodies read strictly (`json_provider`: a lone surrogate is malformed JSON, a 4xx,
  not a 500 later);
- a Redis error (down, full, refusing) is a 503 JSON, like any unavailable service.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mimical.appkit.component import SETTINGS_KEY, error_response
from mimical.chatbot import validate_name
from mimical.config import Settings
from mimical.errors import MimicalError

if TYPE_CHECKING:
    from flask import Flask

# Flask and the components are imported in the functions: a process imports only the
# components it serves (the webhook image has not the API's libraries).

# In the order they are registered: `suggestions` and `away` need `api` (its owner check).
COMPONENTS = ("api", "suggestions", "away", "webhook", "chat")

# Pages load only our own scripts and styles (the docs page has one inline <style>),
# talk only to us, and may not be framed (clickjacking a password prompt).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
UNAVAILABLE_MESSAGE = "a service mimical needs is unavailable right now; try again in a minute"
# Once a browser reached us over HTTPS, it never tries plain HTTP for a year (passwords
# and owner tokens would travel in clear). Only sent over HTTPS, as RFC 6797 asks.
HSTS = "max-age=31536000"


def create_app(
    settings: Settings | None = None,
    components: Iterable[str] = COMPONENTS,
    test_config: dict | None = None,
) -> Flask:
    from flask import Flask, request
    from werkzeug.middleware.proxy_fix import ProxyFix

    from mimical.web.json_provider import StrictJSONProvider

    app = Flask(__name__)
    settings = app.config[SETTINGS_KEY] = settings or Settings.from_env()
    app.config["MAX_CONTENT_LENGTH"] = settings.body_max_bytes
    app.config.update(test_config or {})
    if settings.trusted_proxy_hops:
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    @app.after_request
    def add_security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    app.json = StrictJSONProvider(app)

    @app.url_value_preprocessor
    def refuse_impossible_names(_endpoint, values):
        """A chatbot name in the URL is checked before any view, limit or lookup sees it:
        nothing a stranger writes there becomes a registry lookup or a counter's key."""
        if values and "name" in values:
            validate_name(values["name"])

    _answer_errors_in_json(app)
    for name in components:
        module = component(name)
        module.init_app(app)
        app.register_blueprint(module.blueprint)
    if settings.metrics_port:
        from mimical.appkit.metrics import serve_metrics

        serve_metrics(app, settings.metrics_port)
    return app


def component(name: str):
    """The component module `name`, imported now (by a plain import the graph sees)."""
    if name == "api":
        from mimical.web import api

        return api
    if name == "suggestions":
        from mimical.web import suggestions

        return suggestions
    if name == "away":
        from mimical.web import away

        return away
    if name == "webhook":
        from mimical.messenger import webhook

        return webhook
    if name == "chat":
        from mimical.web import chat

        return chat
    raise KeyError(f"unknown component {name!r}: use {', '.join(COMPONENTS)}")


def _answer_errors_in_json(app: Flask) -> None:
    """Every error in the one JSON shape (`error_response`); 5xx say only that a service
    is unavailable, their detail goes to the log."""
    from flask import request
    from redis.exceptions import RedisError
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    @app.errorhandler(RequestEntityTooLarge)
    def handle_too_large(error):
        limit = request.max_content_length
        response, status = error_response(
            413, "too_large", f"the request body is larger than {limit} bytes"
        )
        # The rest of the body is never read: close rather than drain it for keep-alive.
        response.headers["Connection"] = "close"
        return response, status

    @app.errorhandler(MimicalError)
    def handle_mimical_error(error: MimicalError):
        if error.http_status >= 500:
            # Its text names our bucket, endpoint or a local path: for the log, not clients.
            app.logger.warning("%s %s: %s", request.method, request.path, error)
            return error_response(error.http_status, error.code, UNAVAILABLE_MESSAGE)
        return error_response(error.http_status, error.code, str(error))

    @app.errorhandler(RedisError)
    def handle_redis_error(error: RedisError):
        # Down, full (`maxmemory` with `noeviction` refuses writes) or refusing a command:
        # a shared service is unavailable for a moment, not a bug of this request.
        app.logger.warning("%s %s: Redis: %s", request.method, request.path, error)
        return error_response(503, "unavailable", UNAVAILABLE_MESSAGE)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        response, status = error_response(error.code or 500, code, error.description or error.name)
        # Keep protocol headers werkzeug adds (Allow on 405, Retry-After), not its HTML type.
        response.headers.extend(
            (name, value) for name, value in error.get_headers() if name != "Content-Type"
        )
        return response, status

"""`GET /healthz` (the process answers) and `GET /readyz` (it can do its work), for any app.

Each component that depends on something adds a readiness check: a function that
returns why the app cannot work right now, or None. `/readyz` answers 503 while
any check fails, so Kubernetes stops routing to that replica.

    add_readiness_check(app, lambda: None if redis_ok() else "Redis is unreachable")
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

from mimical.web.api_schemas import Health
from mimical.web.openapi import documented

EXTENSION = "mimical_readiness"


def init_health(app: Flask) -> list:
    """Register the two routes once (whichever component asks first)."""
    if EXTENSION in app.extensions:
        return app.extensions[EXTENSION]
    checks = app.extensions[EXTENSION] = []

    @documented("Liveness", ok={200: ("alive", Health)})
    def healthz():
        return {"status": "ok"}

    @documented(
        "Readiness: the backing services of every component (registry and storage; "
        "for Messenger, a page token Graph accepts)",
        ok={200: ("ready", Health)},
        errors=[503],
    )
    def readyz():
        for check in checks:
            try:
                problem = check()
            except Exception as error:  # any backing-service failure means "not ready"
                problem = type(error).__name__
            if problem:
                current_app.logger.warning("not ready: %s", problem)
                return {"error": "unavailable", "message": f"not ready: {problem}"}, 503
        return {"status": "ok"}

    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)
    return checks


def add_readiness_check(app: Flask, check: Callable[[], str | None]) -> None:
    init_health(app).append(check)

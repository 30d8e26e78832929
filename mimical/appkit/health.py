"""Readiness checks that components add to their app; the API's `GET /readyz` runs them all.

A check is a function that returns why the app cannot do its work right now, or
None (raising counts as a problem too). The API adds "registry and storage answer";
the webhook adds "Graph accepts the page token". `/readyz` answers 503 while any
check fails, so Kubernetes stops routing to that replica. The problem may name buckets,
paths or hosts: it is logged, and shown only on the metrics port's `/readyz`
(`mimical.appkit.metrics`, inside the cluster); the public port says a bare "not ready".

    add_readiness_check(app, lambda: None if redis_ok() else "Redis is unreachable")
    readiness_problem(app)   # None when ready
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

EXTENSION = "mimical_readiness"


def add_readiness_check(app: Flask, check: Callable[[], str | None]) -> None:
    app.extensions.setdefault(EXTENSION, []).append(check)


def readiness_problem(app: Flask) -> str | None:
    """The first failing check's problem, or None when every check passes."""
    for check in app.extensions.get(EXTENSION, []):
        try:
            problem = check()
        except Exception as error:  # any backing-service failure means "not ready"
            problem = f"{type(error).__name__}: {error}"
        if problem:
            return problem
    return None

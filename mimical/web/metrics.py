"""Prometheus metrics for one Flask app, served at `/metrics`.

Each app gets its own `CollectorRegistry` (tests run several apps in one
process). The web ports face the internet, so `/metrics` (endpoints, volumes, how
many chatbots build) answers 404 to anyone but loopback clients, unless the scraper
sends `Authorization: Bearer MIMICAL_METRICS_TOKEN` (`from_operator`, which also
decides who sees why `/readyz` fails). Counted for every request of
every component: requests by endpoint, method and status, and latency; at scrape
time, chatbots by phase.

    curl http://127.0.0.1:8080/metrics
"""

from __future__ import annotations

import hmac
import ipaddress
import time

from flask import Flask, Response, abort, g, request

from mimical.web import get_settings


def from_operator(token: str) -> bool:
    """Whether this request may see operational detail (`/metrics`, why `/readyz` fails):
    a loopback client (a sidecar, `kubectl port-forward`, tests), or the right token."""
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer":
        return hmac.compare_digest(sent.strip().encode(), token.encode())
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def init_metrics(app: Flask):
    """Serve `/metrics` for this app (once, whichever component asks first); returns the
    registry so components can add their own metrics."""
    if "mimical_metrics" in app.extensions:
        return app.extensions["mimical_metrics"]
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Histogram,
        generate_latest,
    )
    from prometheus_client.core import GaugeMetricFamily

    registry = app.extensions["mimical_metrics"] = CollectorRegistry()
    requests = Counter(
        "mimical_http_requests",
        "HTTP requests answered",
        ["endpoint", "method", "status"],
        registry=registry,
    )
    latency = Histogram(
        "mimical_http_request_seconds", "Time to answer a request", ["endpoint"], registry=registry
    )

    class ChatbotCollector:
        """Chatbots by phase, read from the registry when Prometheus scrapes."""

        def collect(self):
            from mimical.web.resources import get_registry

            family = GaugeMetricFamily("mimical_chatbots", "Chatbots by phase", labels=["phase"])
            counts: dict[str, int] = {}
            with app.app_context():
                for chatbot in get_registry().list_all():
                    counts[chatbot.phase.value] = counts.get(chatbot.phase.value, 0) + 1
            for phase, count in sorted(counts.items()):
                family.add_metric([phase], count)
            yield family

    registry.register(ChatbotCollector())

    @app.before_request
    def start_timer():
        g.mimical_request_start = time.perf_counter()

    @app.after_request
    def count_request(response):
        # Route patterns, not raw paths, keep the label set small.
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        requests.labels(endpoint, request.method, str(response.status_code)).inc()
        started = g.get("mimical_request_start")
        if started is not None:
            latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    def metrics():
        if not from_operator(get_settings(app).metrics_token):
            abort(404)  # as if there were none: nothing to probe for
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics)
    return registry

"""Prometheus metrics for one Flask app, served on a port of their own.

The web ports face the internet, so they answer `/metrics` 404 for everyone: the
metrics (endpoints, volumes, how many chatbots build) and why the app is not ready
live on the metrics port (`Settings.metrics_port`, `MIMICAL_METRICS_PORT`; 0: none),
which has no authentication and is meant to be reached only inside the cluster (the
chart's NetworkPolicy admits only the monitoring namespace). Every process that
serves HTTP — `mimical serve`, the backend and webhook images, the Messenger
responder — starts the same small server (`serve_monitoring`):

    GET :9090/metrics   Prometheus text
    GET :9090/readyz    200, or 503 with why (buckets, paths, hosts: for operators)

Each app gets its own `CollectorRegistry` (tests run several apps in one process).
Counted for every request of every component: requests by endpoint, method and
status, and latency; at scrape time, chatbots by phase.

With several gunicorn workers (the images: `WEB_CONCURRENCY`), `gunicorn_config`
puts prometheus_client in multiprocess mode: every worker writes its counts to files
in `PROMETHEUS_MULTIPROC_DIR`, every worker listens on the metrics port
(`SO_REUSEPORT`), and whichever answers a scrape sums all of them, so counts do not
depend on which worker the scraper reached. Gauges therefore say how workers combine
(`multiprocess_mode`) and are set, never computed at scrape time; only the chatbot
count (the same from any worker) is.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable

from flask import Flask, g, request

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def init_metrics(app: Flask):
    """Count this app's requests (once, whichever component asks first); returns the
    registry so components can add their own metrics."""
    if "mimical_metrics" in app.extensions:
        return app.extensions["mimical_metrics"]
    from prometheus_client import CollectorRegistry, Counter, Histogram

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
    registry.register(ChatbotCollector(app))

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

    return registry


class ChatbotCollector:
    """Chatbots by phase, read from the registry when Prometheus scrapes."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from mimical.appkit.resources import get_registry

        family = GaugeMetricFamily("mimical_chatbots", "Chatbots by phase", labels=["phase"])
        counts: dict[str, int] = {}
        with self.app.app_context():
            for chatbot in get_registry().list_all():
                counts[chatbot.phase.value] = counts.get(chatbot.phase.value, 0) + 1
        for phase, count in sorted(counts.items()):
            family.add_metric([phase], count)
        yield family


def scraped_registry(app: Flask):
    """What a scrape of this app shows: its own registry, or, in multiprocess mode, the
    counts every worker wrote plus the chatbot count."""
    init_metrics(app)
    if not os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        return app.extensions["mimical_metrics"]
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(ChatbotCollector(app))
    return registry


def metrics_wsgi(app: Flask):
    """The metrics port's WSGI app of a web app: its scraped counts, and `/readyz`
    from its components' readiness checks (`mimical.appkit.health`)."""
    from mimical.appkit.health import readiness_problem

    def problem() -> str | None:
        with app.app_context():
            return readiness_problem(app)

    return monitoring_wsgi(scraped_registry(app), problem)


def monitoring_wsgi(registry, readiness: Callable[[], str | None]):
    """A metrics port's WSGI app: `/metrics` (`registry` in Prometheus text), and
    `/readyz` (503 with `readiness()`'s problem, for operators); anything else is 404.
    Needs no web app: the Messenger responder serves its own."""
    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(registry)

    def wsgi(environ, start_response):
        path = environ.get("PATH_INFO")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/readyz":
            problem = readiness()
            answer = {"error": "unavailable", "message": f"not ready: {problem}"}
            status = "503 Service Unavailable" if problem else "200 OK"
            body = answer if problem else {"status": "ok"}
        else:
            answer = {"error": "not_found", "message": "the metrics port serves /metrics, /readyz"}
            status, body = "404 Not Found", answer
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    return wsgi


def serve_metrics(app: Flask, port: int) -> int:
    """Serve `metrics_wsgi(app)` on `port` until `close_resources(app)`; returns the port."""
    from mimical.appkit.resources import app_resources

    server = serve_monitoring(metrics_wsgi(app), port)
    app_resources(app)["metrics_server"] = server
    return server.socket.getsockname()[1]


def serve_monitoring(wsgi, port: int):
    """Serve `wsgi` on `port` (0: a free one) of every interface, in a thread; returns
    the server (`shutdown()` and `server_close()` stop it), or a clear error when the
    port is out of range or taken.

    The socket allows other processes to bind the same port (`SO_REUSEPORT`): each
    gunicorn worker serves it, and the kernel spreads scrapes among them."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    from mimical.errors import InputError, UnavailableError

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args) -> None:
            """A line per scrape would bury the log; errors are still logged."""

    if not 0 <= port < 65536:
        raise InputError(f"the metrics port (MIMICAL_METRICS_PORT) must be 1-65535, not {port}")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        listener.bind(("0.0.0.0", port))
        listener.listen(64)
        server = make_server(
            "0.0.0.0", port, wsgi, threaded=True, request_handler=QuietHandler, fd=listener.fileno()
        )
    except OSError as error:
        raise UnavailableError(f"cannot serve metrics on port {port}: {error}") from None
    finally:
        listener.close()  # the server holds its own copy of the socket
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server

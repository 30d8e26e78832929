"""`/readyz` tells the public only "not ready"; why (a bucket, a path, a host) goes to the
log and to the metrics port, which only the cluster reaches."""

from __future__ import annotations

import logging

from werkzeug.test import Client

from mimical.app import create_app
from mimical.appkit.metrics import metrics_wsgi
from mimical.appkit.resources import close_resources
from mimical.config import Settings
from mimical.testing.servers import free_port

BUCKET = "secret-bucket-name"


def test_readyz_says_why_only_on_the_metrics_port_and_in_the_log(tmp_path, caplog):
    settings = Settings(
        home=tmp_path / "home",
        storage_url=f"s3://{BUCKET}/prefix",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: unreachable
        trusted_proxy_hops=1,
    )
    app = create_app(settings, components=["api"], test_config={"TESTING": True})
    client = app.test_client()
    try:
        with caplog.at_level(logging.WARNING):
            public = [
                client.get("/readyz", headers={"X-Forwarded-For": "203.0.113.5"}),
                client.get("/readyz", headers={"Authorization": "Bearer scrape-me"}),
                client.get("/readyz"),  # loopback: no longer special
            ]
        operator = Client(metrics_wsgi(app)).get("/readyz")
    finally:
        close_resources(app)
    for answer in public:
        assert answer.status_code == 503
        assert answer.get_json() == {"error": "unavailable", "message": "not ready"}
    assert operator.status_code == 503
    assert operator.get_json()["message"].startswith("not ready: ")
    assert BUCKET in operator.get_json()["message"]
    assert f"not ready: UnavailableError: s3://{BUCKET}/" in caplog.text

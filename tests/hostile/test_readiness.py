"""`/readyz` tells the public only "not ready"; why (a bucket, a path, a host) is for operators."""

from __future__ import annotations

import logging

from mimical.config import Settings
from mimical.testing.servers import free_port
from mimical.web import create_app
from mimical.web.resources import close_resources

BUCKET = "secret-bucket-name"


def test_readyz_says_why_only_to_operators_and_the_log(tmp_path, caplog):
    settings = Settings(
        home=tmp_path / "home",
        storage_url=f"s3://{BUCKET}/prefix",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: unreachable
        metrics_token="scrape-me",
        trusted_proxy_hops=1,
    )
    app = create_app(settings, components=["api"], test_config={"TESTING": True})
    client = app.test_client()
    outside = {"X-Forwarded-For": "203.0.113.5"}
    try:
        with caplog.at_level(logging.WARNING):
            public = client.get("/readyz", headers=outside)
        operator = client.get("/readyz", headers={**outside, "Authorization": "Bearer scrape-me"})
        guessed = client.get("/readyz", headers={**outside, "Authorization": "Bearer guess"})
        port_forward = client.get("/readyz")  # loopback
    finally:
        close_resources(app)
    assert public.status_code == guessed.status_code == 503
    assert (
        public.get_json() == guessed.get_json() == {"error": "unavailable", "message": "not ready"}
    )
    assert BUCKET not in public.get_data(as_text=True) and str(tmp_path) not in public.get_data(
        as_text=True
    )
    for detailed in (operator, port_forward):
        assert detailed.status_code == 503
        assert detailed.get_json()["message"].startswith("not ready: ")
        assert BUCKET in detailed.get_json()["message"]
    assert f"not ready: UnavailableError: s3://{BUCKET}/" in caplog.text

"""`/metrics` lives on a port of its own: the public web port answers it 404 for everyone
(loopback clients and bearer tokens included), the metrics port answers with the counts."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from mimical.app import create_app
from mimical.appkit.resources import app_resources, close_resources
from mimical.config import Settings
from mimical.errors import InputError, UnavailableError
from mimical.testing.servers import free_port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.parametrize(
    "headers",
    [
        {},  # loopback: the test client's address, as a port-forward or sidecar would be
        {"Authorization": "Bearer scrape-me"},  # the token that once opened it
        {"X-Forwarded-For": "203.0.113.5"},
        {"X-Forwarded-For": "127.0.0.1"},
    ],
    ids=["loopback", "bearer", "outside", "spoofed-loopback"],
)
def test_the_web_port_answers_metrics_404_for_everyone(tmp_path, headers):
    settings = Settings(home=tmp_path / "home", trusted_proxy_hops=1)
    app = create_app(settings, test_config={"TESTING": True})  # every component
    try:
        answer = app.test_client().get("/metrics", headers=headers)
        unknown = app.test_client().get("/no-such-page", headers=headers)
    finally:
        close_resources(app)
    # As if there were none: the same answer as any unknown path, nothing to probe for.
    assert answer.status_code == unknown.status_code == 404
    assert answer.get_json() == unknown.get_json()


def test_the_metrics_port_answers_the_counts_and_readiness(tmp_path):
    metrics_port = free_port()
    app = create_app(
        Settings(home=tmp_path / "home", metrics_port=metrics_port),
        components=["api"],
        test_config={"TESTING": True},
    )
    try:
        client = app.test_client()
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
        status, metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert (
            'mimical_http_requests_total{endpoint="/healthz",method="GET",status="200"} 3.0'
            in metrics
        )
        assert get(f"http://127.0.0.1:{metrics_port}/readyz") == (200, '{"status": "ok"}')
        status, body = get(f"http://127.0.0.1:{metrics_port}/api/chatbots")
        assert status == 404 and json.loads(body)["error"] == "not_found"
        server = app_resources(app)["metrics_server"]
    finally:
        close_resources(app)
    # Closing the app closes its metrics socket. (Not probed by connecting: the port is
    # SO_REUSEPORT, so a parallel test's server that drew the same free port may answer.)
    assert server.socket.fileno() == -1


@pytest.mark.parametrize("port", [-1, 65536])
def test_an_impossible_metrics_port_is_a_clear_error(tmp_path, port):
    with pytest.raises(InputError, match=f"must be 1-65535, not {port}"):
        create_app(Settings(home=tmp_path / "home", metrics_port=port), components=["api"])


def test_a_taken_metrics_port_is_a_clear_error(tmp_path):
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UnavailableError, match=f"cannot serve metrics on port {port}"):
            create_app(Settings(home=tmp_path / "home", metrics_port=port), components=["api"])

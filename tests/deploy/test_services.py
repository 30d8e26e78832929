"""The backend and webhook entries, run exactly as their images run them: gunicorn with
the Dockerfile's CMD, on a loopback port, answering the probes the chart configures.

Run: .venv/bin/pytest tests/deploy/test_services.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mimical.testing.servers import free_port, image_command, stop_server, wait_for_port
from tests.deploy.conftest import ROOT


def start_service(
    folder: str, tmp_path: Path, redis_url: str, **extra_env: str
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = image_command(ROOT / folder, f"127.0.0.1:{port}")
    env = {
        **os.environ,
        "MIMICAL_HOME": str(tmp_path / "home"),
        "REDIS_URL": redis_url,
        # As in the cluster: a remote model server, never an in-process one.
        "MIMICAL_MODEL_SERVER": f"127.0.0.1:{free_port()}",
        "WEB_CONCURRENCY": "1",
        # gunicorn keeps its control socket under $HOME (the image sets HOME=/tmp).
        "HOME": str(tmp_path),
        **extra_env,
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        command, cwd=ROOT / folder, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, process, timeout=90)
    except (RuntimeError, TimeoutError):
        stop_server(process)
        pytest.fail((tmp_path / "gunicorn.log").read_text()[-3000:])
    return process, f"http://127.0.0.1:{port}"


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read().decode()


def test_backend_answers_its_probes(tmp_path, redis_url):
    process, base = start_service("services/backend", tmp_path, redis_url)
    try:
        assert get(f"{base}/healthz") == (200, '{"status":"ok"}\n')
        status, body = get(f"{base}/readyz")
        assert status == 200, body
        status, body = get(f"{base}/api/chatbots")
        assert status == 200 and json.loads(body) == {"chatbots": []}
    finally:
        stop_server(process)


def test_webhook_serves_the_chat_page_and_messenger_handshake(tmp_path, redis_url):
    # The chart passes the Messenger Secret's keys as these variables.
    process, base = start_service(
        "services/webhook", tmp_path, redis_url, MIMICAL_FB_VERIFY_TOKEN="verify-me"
    )
    try:
        status, body = get(f"{base}/chat")
        assert status == 200 and "<html" in body.lower()
        query = "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=4242"
        assert get(f"{base}/webhook?{query}") == (200, "4242")
    finally:
        stop_server(process)
    # The access log names the path, never the query with its verify token.
    log = (tmp_path / "gunicorn.log").read_text()
    assert '"GET /webhook HTTP/1.1" 200' in log and "verify-me" not in log


def test_two_workers_count_together_on_the_metrics_port(tmp_path, redis_url):
    """Whichever gunicorn worker answers a request or a scrape, the metrics port shows
    every worker's counts (prometheus_client's multiprocess mode); the web port has no
    `/metrics` at all."""
    metrics_port = free_port()
    process, base = start_service(
        "services/backend",
        tmp_path,
        redis_url,
        WEB_CONCURRENCY="2",
        MIMICAL_METRICS_PORT=str(metrics_port),
    )
    try:
        wait_for_port(metrics_port, process, timeout=90)
        requests = 40  # a new connection each: the workers take turns accepting them
        for _ in range(requests):
            assert get(f"{base}/healthz")[0] == 200
        with pytest.raises(urllib.error.HTTPError) as public:
            get(f"{base}/metrics")
        assert public.value.code == 404
        sample = (
            'mimical_http_requests_total{endpoint="/healthz",method="GET",status="200"} '
            f"{float(requests)}"
        )
        for _ in range(10):  # each scrape may reach either worker: all see the sum
            status, metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert status == 200 and sample in metrics, metrics
        assert get(f"http://127.0.0.1:{metrics_port}/readyz") == (200, '{"status": "ok"}')
    finally:
        stop_server(process)
    # The upload gauge sums the live workers: one sample, no worker (pid) label.
    assert "mimical_uploads_receiving 0.0" in metrics

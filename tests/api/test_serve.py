"""`mimical serve`: the embedded all-in-one starts, answers, stops cleanly, and holds up
against slow and oversized requests on real sockets (it runs gunicorn)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from mimical.testing.servers import free_port, wait_for_port


def mimical(*args, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mimical.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_runs_api_and_chat(tmp_path):
    metrics_port = free_port()
    env = {
        **os.environ,
        "MIMICAL_HOME": str(tmp_path / "home"),
        "MIMICAL_METRICS_PORT": str(metrics_port),
    }
    port = free_port()
    process = mimical("serve", "--port", str(port), env=env)
    try:
        wait_for_port(port, process)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/healthz") as response:
            assert json.load(response) == {"status": "ok"}
        with urllib.request.urlopen(f"{base}/api/chatbots") as response:
            assert json.load(response) == {"chatbots": []}
        with urllib.request.urlopen(f"{base}/chat") as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as public:  # loopback, yet no metrics
            urllib.request.urlopen(f"{base}/metrics")
        assert public.value.code == 404
        wait_for_port(metrics_port, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            metrics = response.read().decode()
        assert 'mimical_http_requests_total{endpoint="/chat",method="GET",status="200"} 1.0' in (
            metrics
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert f"mimical serving on http://127.0.0.1:{port}" in stderr
    assert f"metrics: port {metrics_port}" in stderr


def test_serve_on_a_busy_port_says_so(tmp_path):
    env = {**os.environ, "MIMICAL_HOME": str(tmp_path / "home")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        process = mimical("serve", "--port", str(busy.getsockname()[1]), env=env)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "cannot listen on 127.0.0.1" in stderr and "Traceback" not in stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One `mimical serve` (gunicorn) for the real-socket tests; yields (port, worker)."""
    import psutil

    env = {**os.environ, "MIMICAL_HOME": str(tmp_path_factory.mktemp("serve") / "home")}
    port = free_port()
    process = mimical("serve", "--port", str(port), env=env)
    try:
        wait_for_port(port, process)
        get_json(port, "/healthz", timeout=60)  # answered by the worker, so it exists
        [worker] = psutil.Process(process.pid).children()
        yield port, worker
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def get_json(port: int, path: str, timeout: float = 5.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return json.load(response)


def test_half_sent_requests_do_not_starve_the_server(served):
    port, _ = served
    slow = []
    try:
        for number in range(500):
            client = socket.create_connection(("127.0.0.1", port))
            if number % 2:  # half a head
                client.sendall(b"POST /chat/messages HTTP/1.1\r\nHost: x\r\nContent-")
            else:  # a whole head, half a small body
                client.sendall(
                    b"POST /chat/messages HTTP/1.1\r\nHost: x\r\n"
                    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"te'
                )
            slow.append(client)
        assert get_json(port, "/healthz") == {"status": "ok"}
    finally:
        for client in slow:
            client.close()


def read_response(client: socket.socket) -> tuple[int, bytes]:
    client.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.parametrize("path", ["/webhook", "/chat/messages"])
def test_huge_unauthenticated_bodies_are_refused_unread(served, path):
    port, worker = served
    get_json(port, "/healthz")
    before = worker.memory_info().rss
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {300 * 1024**2}\r\n\r\n".encode()
        )
        client.sendall(b"[" * 65536)
        status, _ = read_response(client)
        assert status == 413
        with pytest.raises(OSError):  # the server closed without reading the rest
            for _ in range(300 * 16):
                client.sendall(b"[" * 65536)
    assert worker.memory_info().rss - before < 20 * 1024**2


def test_a_chunked_body_is_read_no_further_than_the_limit(served):
    port, worker = served
    get_json(port, "/healthz")
    before = worker.memory_info().rss
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(
            b"POST /chat/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"a" * 65536
        try:
            for _ in range(256):  # 16 MiB, far past the 256 KiB limit
                client.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # answered and closed before we finished
        status, _ = read_response(client)
    # With no length announced, werkzeug reads up to the limit: that is no JSON.
    assert status == 422
    assert worker.memory_info().rss - before < 20 * 1024**2

"""`mimical serve`: the embedded all-in-one starts, answers, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

from tests.fixtures.services import free_port, wait_for_port


def mimical(*args, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mimical.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_runs_api_and_chat(tmp_path):
    env = {**os.environ, "MIMICAL_HOME": str(tmp_path / "home")}
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
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert f"mimical serving on http://127.0.0.1:{port}" in stderr


def test_serve_on_a_busy_port_says_so(tmp_path):
    env = {**os.environ, "MIMICAL_HOME": str(tmp_path / "home")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        process = mimical("serve", "--port", str(busy.getsockname()[1]), env=env)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "cannot listen on 127.0.0.1" in stderr and "Traceback" not in stderr

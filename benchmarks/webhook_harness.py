"""What the webhook benchmarks share: starting the webhook and responder processes,
signing and posting Messenger events, and the few constants both runs agree on.

`webhook_bench.py` (the load run) and `webhook_chaos.py` (the kill -9 run it goes on
to) both import this, so neither imports the other back. The fakes and process
helpers they share with the tests come from `mimical.testing`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

from mimical.testing.servers import image_command

ROOT = Path(__file__).resolve().parents[1]

APP_SECRET = "bench-secret"
PERSONA = "bench"
RESPONDER_THREADS = 8
WEBHOOK_PROCESSES = 2  # the chart's webhook.workers
WARMUP_RATE = 50.0  # persona picks per second before each measured phase
# TensorFlow's import alone takes a minute or more on a busy 2-core machine.
STARTUP_TIMEOUT_SECONDS = 600.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_webhook(port: int, env: dict, log: Path, workers: int) -> subprocess.Popen:
    """The webhook image's command (gunicorn, `WEB_CONCURRENCY` processes as the chart's
    `webhook.workers`) with `workers` Messenger threads each (0: they only acknowledge)."""
    folder = ROOT / "services" / "webhook"
    return subprocess.Popen(
        image_command(folder, f"127.0.0.1:{port}"),
        cwd=folder,
        env={
            **env,
            "MIMICAL_MESSENGER_WORKERS": str(workers),
            "WEB_CONCURRENCY": str(WEBHOOK_PROCESSES),
            "HOME": str(log.parent),  # gunicorn's control socket, as HOME=/tmp in the image
        },
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # killpg takes its gunicorn workers too
    )


def start_responder(env: dict, log: Path, nice: int, *options: str) -> subprocess.Popen:
    """`mimical messenger respond` at `nice`, answering what the webhooks stored in Redis."""
    mimical = str(Path(sys.executable).with_name("mimical"))
    return subprocess.Popen(
        [
            *niced(nice),
            mimical,
            "messenger",
            "respond",
            f"--threads={RESPONDER_THREADS}",
            *options,
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def sign(body: bytes) -> str:
    """The `X-Hub-Signature-256` Messenger sends with `body`."""
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


class EchoSender:
    """Delivers the fake Graph's echoes to the webhooks as Messenger would: signed, a few
    at a time, to another replica when one does not answer 200, for up to a minute."""

    def __init__(self, urls: list[str]):
        from concurrent.futures import ThreadPoolExecutor

        self.urls = urls
        self.pool = ThreadPoolExecutor(4)

    def __call__(self, body: bytes) -> None:
        self.pool.submit(self._deliver, body)

    def _deliver(self, body: bytes) -> None:
        import urllib.request

        signature = sign(body)
        deadline, attempt = time.monotonic() + 60, 0
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                self.urls[attempt % len(self.urls)],
                data=body,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            attempt += 1
            time.sleep(0.05)


def niced(nice: int) -> list[str]:
    """The command prefix that runs a process at `nice` (lower CPU priority)."""
    return ["nice", "-n", str(nice)] if nice else []


def make_post(tag: str, i: int, psid: str, text: str) -> dict:
    mid = f"{tag}-m{i}"
    event = {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE"},
        "timestamp": int(time.time() * 1000),  # older than the reply window: unanswered
        "message": {"mid": mid, "text": text},
    }
    body = json.dumps({"object": "page", "entry": [{"id": "PAGE", "messaging": [event]}]}).encode()
    signature = sign(body)
    return {
        "psid": psid,
        "mid": mid,
        "chat": text != PERSONA,
        "body": body,
        "signature": signature,
        "duplicate": False,
    }


async def open_loop(posts: list[dict], rate: float, send) -> None:
    """Start `send(post)` for post i at start + i/rate, whatever the server's pace (an open
    loop: a slow server does not slow the load down); return when every send is done."""
    tasks, start = [], time.perf_counter()
    for i, post in enumerate(posts):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(post)))
    await asyncio.gather(*tasks)


async def post_event(session, url: str, post: dict, timeout: float) -> int:
    """POST one signed webhook event; its HTTP status, 0 when no answer came."""
    import aiohttp

    try:
        async with session.post(
            url,
            data=post["body"],
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": post["signature"]},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            await response.read()
            return response.status
    except (TimeoutError, aiohttp.ClientError):
        return 0

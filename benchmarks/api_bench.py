"""Backend API: a huge upload streams with flat memory; listing 1,000 chatbots stays fast.

    .venv/bin/python benchmarks/api_bench.py [--mb 200] [--chatbots 1000] [--requests 1000]

Runs the API (component `api`, embedded storage and registry in a temporary home)
in a separate server process on loopback, then:

1. Upload: POSTs a WhatsApp export of `--mb` MB (a sample chat repeated) as
   multipart, streamed from disk by the client with a fixed Content-Length, and
   samples the server's RSS while it receives, checks and stores it. Same-run
   baseline: the same upload of a 2 MB export. Goal: peak RSS ratio ~1 (flat).
   Throughput is compared with a plain file copy of the same bytes on this disk.
2. Listing: registers `--chatbots` public chatbots, then times `--requests`
   sequential GET /api/chatbots over one keep-alive connection; same-run baseline
   is GET /healthz on the same connection. Reports p50/p99 and the p99 ratio.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

SMALL_MB = 2
BOUNDARY = uuid.uuid4().hex


def serve(port: int, home: Path) -> None:
    """The server process: the API app on loopback (werkzeug, threaded)."""
    from werkzeug.serving import make_server

    from mimical.app import create_app
    from mimical.config import Settings

    settings = Settings(home=home, upload_max_bytes=2 * 1024**3, build_rate_limit="1000/minute")
    app = create_app(settings, components=["api"])
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


def build_export(path: Path, megabytes: int) -> Path:
    """A WhatsApp .txt export of about `megabytes` MB: one sample chat, repeated."""
    from mimical.samples.export import write_sample_export

    sample_dir = Path(tempfile.mkdtemp(prefix="api-bench-sample-"))
    try:
        write_sample_export("whatsapp-android", sample_dir, max_conversations=5)
        chat = max(sample_dir.glob("*.txt"), key=lambda p: p.stat().st_size).read_bytes()
    finally:
        shutil.rmtree(sample_dir)
    target = megabytes * 1024 * 1024
    with path.open("wb") as out:
        written = 0
        while written < target:
            out.write(chat)
            written += len(chat)
    return path


class RssSampler(threading.Thread):
    """Samples a process's resident set size every few milliseconds; keeps the peak."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def upload(port: int, export: Path, name: str) -> tuple[int, dict, float]:
    """Stream a multipart upload from disk; return (status, body, seconds)."""
    import json

    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="public"\r\n\r\ntrue\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="export"; '
        f'filename="{export.name}"\r\nContent-Type: text/plain\r\n\r\n'
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.putrequest("POST", "/api/chatbots")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    connection.putheader("Content-Length", str(len(head) + export.stat().st_size + len(tail)))
    connection.endheaders()
    connection.send(head)
    with export.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            connection.send(chunk)
    connection.send(tail)
    response = connection.getresponse()
    body = json.loads(response.read())
    seconds = time.perf_counter() - started
    connection.close()
    return response.status, body, seconds


def delete(port: int, name: str, token: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(
        "DELETE", f"/api/chatbots/{name}", headers={"Authorization": f"Bearer {token}"}
    )
    connection.getresponse().read()
    connection.close()


def measure_upload(port: int, pid: int, export: Path, name: str) -> tuple[int, float, float]:
    """(peak server RSS during the upload, seconds, MB/s)."""
    sampler = RssSampler(pid)
    sampler.start()
    status, body, seconds = upload(port, export, name)
    peak = sampler.stop()
    if status != 202:
        raise SystemExit(f"upload of {export.name} answered {status}: {body}")
    delete(port, name, body["owner_token"])  # stops the build before it trains
    return peak, seconds, export.stat().st_size / 1024**2 / seconds


def timed_gets(port: int, path: str, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200:
            raise SystemExit(f"GET {path} answered {response.status}")
    connection.close()
    return times


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(fraction * 100) - 1]


def table(header: list[str], rows: list[list[str]]) -> None:
    """Print a Markdown table, first column left-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        padded = [f"{cells[0]:<{widths[0]}}"] + [
            f"{cell:>{width}}" for cell, width in zip(cells[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    print(line(header))
    print("| " + " | ".join("-" * width for width in widths) + " |")
    for row in rows:
        print(line(row))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the big upload")
    parser.add_argument("--chatbots", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return 0

    # The harness's helpers for servers on loopback; not imported by the measured server.
    from mimical.testing.servers import free_port, wait_for_port

    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(work / "home")],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, timeout=60)
        small = build_export(work / "small-chat.txt", SMALL_MB)
        big = build_export(work / "big-chat.txt", args.mb)

        copy_started = time.perf_counter()
        shutil.copyfile(big, work / "copy.txt")
        copy_mbps = args.mb / (time.perf_counter() - copy_started)
        os.unlink(work / "copy.txt")

        small_peak, small_seconds, small_mbps = measure_upload(port, server.pid, small, "small")
        big_peak, big_seconds, big_mbps = measure_upload(port, server.pid, big, "big")

        from mimical.config import Settings
        from mimical.orchestration import open_registry

        registry = open_registry(Settings(home=work / "home"))
        for index in range(args.chatbots):
            registry.create(f"bench-{index:05d}", public=True, display_name=f"Bench {index}")
        listed = timed_gets(port, "/api/chatbots", args.requests)
        health = timed_gets(port, "/healthz", args.requests)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    mb, ms = 1024**2, 1000
    print(f"\nUpload (server process RSS; baseline: the same upload of {SMALL_MB} MB)")
    table(
        ["upload", "peak RSS MB", "seconds", "MB/s"],
        [
            [
                f"{SMALL_MB} MB",
                f"{small_peak / mb:.1f}",
                f"{small_seconds:.2f}",
                f"{small_mbps:.1f}",
            ],
            [f"{args.mb} MB", f"{big_peak / mb:.1f}", f"{big_seconds:.2f}", f"{big_mbps:.1f}"],
            ["plain file copy", "", "", f"{copy_mbps:.1f}"],
        ],
    )
    print(f"peak RSS ratio {args.mb} MB / {SMALL_MB} MB: {big_peak / small_peak:.2f} (goal ~1)")
    print(f"upload speed / plain file copy: {big_mbps / copy_mbps:.2f}")

    print(f"\nGET latency over one keep-alive connection, {args.requests} requests each")
    table(
        ["request", "p50 ms", "p99 ms"],
        [
            [label, f"{percentile(times, 0.5) * ms:.2f}", f"{percentile(times, 0.99) * ms:.2f}"]
            for label, times in (
                (f"/api/chatbots ({args.chatbots} chatbots)", listed),
                ("/healthz (baseline)", health),
            )
        ],
    )
    ratio = percentile(listed, 0.99) / percentile(health, 0.99)
    print(f"p99 ratio /api/chatbots / /healthz: {ratio:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

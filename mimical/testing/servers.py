"""Real servers on loopback for tests and benchmarks: Redis, S3 (moto in server mode),
our images' commands, a WSGI app on a port (`serving_wsgi`), and event-driven waits for
them (`wait_for`, `wait_for_port`)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port free on loopback now (the OS picks it; a server should bind it soon)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving_wsgi(app) -> Iterator[str]:
    """`app` served over HTTP on a free loopback port, in a thread, while the block runs;
    yields its base URL (for browsers, command lines and racing clients)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def wait_for(what: str, check: Callable[[], object], timeout: float = 60.0):
    """Poll `check` until it returns something truthy, and return that; fail naming
    `what` after `timeout` (generous by default: a loaded CI machine stalls threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def image_command(folder: Path, bind: str) -> list[str]:
    """The exec-form CMD of `folder`'s Dockerfile, listening on `bind`, run from this venv."""
    text = (folder / "Dockerfile").read_text().replace("\\\n", " ")
    cmd = [line for line in text.splitlines() if line.startswith("CMD [")][-1]
    command = json.loads(cmd[len("CMD ") :])
    command[command.index("--bind") + 1] = bind
    command[0] = str(Path(sys.executable).with_name(command[0]))
    return command


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Return once `process` accepts connections on `port`; fail fast if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{process.args[0]} did not listen on {port} within {timeout}s")


def start_server(args: list[str], port: int, log: Path) -> subprocess.Popen:
    """Start `args` with its output in `log`, and return it once it listens on `port`."""
    process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, process)
    return process


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still running after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on loopback (no persistence); returns it and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (scripts/bootstrap installs it)")
    port = free_port()
    process = start_server(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        port,
        workdir / "redis.log",
    )
    return process, f"redis://127.0.0.1:{port}/0"


def start_moto(workdir: Path) -> tuple[subprocess.Popen, str]:
    """moto's standalone S3 server on loopback; returns it and its endpoint URL."""
    port = free_port()
    moto_server = Path(sys.executable).with_name("moto_server")
    process = start_server(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)], port, workdir / "moto.log"
    )
    return process, f"http://127.0.0.1:{port}"

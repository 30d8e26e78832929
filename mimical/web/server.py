"""The HTTP server of `mimical serve`: gunicorn's threaded worker, hardened against slow clients.

gunicorn's `gthread` worker hands a connection to a thread as soon as it is
readable, and the thread then blocks until the whole request has arrived: 500
clients that send half a request each hold a thread, and nobody else is served.
`BoundedThreadWorker` gives a connection a thread only once its request head
(and a small body: up to `SMALL_BODY_BYTES`) is all there, reading what arrived
without blocking; until then the connection waits in the worker's poller, and
one that has not finished its request `REQUEST_ARRIVAL_SECONDS` after it began
is closed. Bodies too large to wait for (uploads) are read by the thread with a
`BODY_READ_TIMEOUT_SECONDS` timeout on each read (408 past it).

    run_gunicorn(listener, make_app, close_app)  # serve until SIGTERM or Ctrl-C
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

from gunicorn.workers.gthread import _DEFER, ThreadWorker
from werkzeug.exceptions import RequestTimeout

# Threads serving requests in the one worker; each answer waits on the model at most
# ~10 s (`mimical.dialog.engine.REPLY_TIMEOUT_SECONDS`).
SERVER_THREADS = 16
# Seconds gunicorn lets the worker go silent before replacing it, an idle keep-alive
# connection stay open, and a stopping worker finish what it started.
WORKER_TIMEOUT_SECONDS = 120
KEEPALIVE_SECONDS = 5
GRACEFUL_TIMEOUT_SECONDS = 30
# A request whose head (and small body) has not all arrived this long after its first
# byte is from a client too slow or hostile to serve.
REQUEST_ARRIVAL_SECONDS = 10.0
# Bodies up to this size must have arrived before a thread takes the request (a
# socket's receive buffer holds them); larger ones stream to the app.
SMALL_BODY_BYTES = 64 * 1024
# Bytes read before a thread takes over: a request head (gunicorn refuses heads past
# its own limits) plus a small body.
PEEK_BYTES = 2 * SMALL_BODY_BYTES
BODY_READ_TIMEOUT_SECONDS = 30.0

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def request_arrived(data: bytes) -> bool:
    """True once `data` (the start of what a client sent) holds a request to serve.

    That is: the head is complete and so is a small body, or the client sent more
    than we wait for (gunicorn parses and judges it).
    """
    if len(data) >= PEEK_BYTES:
        return True
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    length = _CONTENT_LENGTH.search(data, 0, head_end + 2)
    if length is None or int(length.group(1)) > SMALL_BODY_BYTES:
        return True
    return len(data) - (head_end + 4) >= int(length.group(1))


class BoundedThreadWorker(ThreadWorker):
    """gthread, but a connection gets a thread only once its request has arrived.

    What arrives early is read off the socket into the connection (so the poller
    wakes it only for new bytes), then handed to gunicorn's parser in one piece.
    """

    def handle(self, conn):
        conn.init()  # the parser (idempotent); early bytes go back into its buffer
        if not conn.parser.unreader.buf.getvalue():  # else gunicorn already holds a request
            early = conn.__dict__.setdefault("early_bytes", bytearray())
            try:
                chunk = conn.sock.recv(PEEK_BYTES - len(early), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                chunk = None  # nothing new yet
            except OSError:
                chunk = b""  # reset: gunicorn sees the end and closes
            early += chunk or b""
            if chunk is None or (chunk and not request_arrived(bytes(early))):
                started = conn.__dict__.setdefault("request_started", time.monotonic())
                if time.monotonic() - started > REQUEST_ARRIVAL_SECONDS:
                    return False  # close: too slow
                return _DEFER  # back to the poller; no thread waits for it
            conn.parser.unreader.unread(bytes(early))
            del conn.early_bytes
            conn.__dict__.pop("request_started", None)
        return super().handle(conn)


class BodyReadTimeout:
    """WSGI middleware: a body read that waits past the timeout is a 408, not a held thread."""

    def __init__(self, app, seconds: float = BODY_READ_TIMEOUT_SECONDS):
        self.app = app
        self.seconds = seconds

    def __call__(self, environ, start_response):
        client = environ.get("gunicorn.socket")
        if client is not None:
            client.settimeout(self.seconds)
            environ["wsgi.input"] = _TimedInput(environ["wsgi.input"])
        return self.app(environ, start_response)


class _TimedInput:
    def __init__(self, stream):
        self._stream = stream

    def _call(self, method, *args):
        try:
            return method(*args)
        except TimeoutError:
            raise RequestTimeout("the request body stopped arriving") from None

    def read(self, *args):
        return self._call(self._stream.read, *args)

    def readline(self, *args):
        return self._call(self._stream.readline, *args)

    def readlines(self, *args):
        return self._call(self._stream.readlines, *args)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def run_gunicorn(listener: socket.socket, make_app: Callable, close_app: Callable) -> None:
    """Serve `make_app()` on `listener` until SIGTERM or Ctrl-C, then `close_app(app)`.

    One worker process (sessions, password tries, the model server and builds live
    in it) builds the app itself, so the app's threads start after the fork.
    """
    from gunicorn.app.base import BaseApplication

    if listener.family in (socket.AF_INET, socket.AF_INET6):
        # gunicorn sets this only on sockets it binds itself; accepted connections inherit
        # it. Without it, a response's head and body (two writes) wait on delayed ACKs.
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    options = gunicorn_options(listener.detach())  # gunicorn closes it when it stops
    apps = []

    def load():
        apps.append(make_app())
        return BodyReadTimeout(apps[0])

    def worker_exit(server, worker) -> None:
        for app in apps:
            close_app(app)

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {**options, "worker_exit": worker_exit}.items():
                self.cfg.set(key, value)

        def load(self):
            return load()

    # SIGTERM (`docker stop`, Kubernetes) and Ctrl-C stop the worker gracefully; the
    # arbiter then returns.
    Server().run()


# The worker and its limits, the same in `mimical serve` and in the images
# (`gunicorn -c python:mimical.web.gunicorn_config`).
WORKER_SETTINGS = {
    "worker_class": f"{__name__}.BoundedThreadWorker",
    # gunicorn's default format logs the request line with its query string (Messenger's
    # `hub.verify_token`) and the Referer: the path alone says what was asked.
    "access_log_format": '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"',
    "threads": SERVER_THREADS,
    "timeout": WORKER_TIMEOUT_SECONDS,
    "keepalive": KEEPALIVE_SECONDS,
    "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
}


def gunicorn_options(listener_fd: int) -> dict:
    """gunicorn settings for a server on a listening socket (gunicorn owns it)."""
    return {
        "bind": [f"fd://{listener_fd}"],
        # One process: sessions, password tries, the model server and builds live in it.
        "workers": 1,
        **WORKER_SETTINGS,
        # Our own line says where we listen; gunicorn reports only problems.
        "loglevel": "warning",
        "accesslog": None,
    }

"""`mimical serve`: the embedded all-in-one, nothing else to install or run.

    mimical serve                       # http://127.0.0.1:8080: API, /chat, /webhook, /docs
    mimical serve --host 0.0.0.0 --port 9000 --max-minutes 5

One server serves the backend API, the web chat and the Messenger webhook,
runs the model server in-process over the storage's `models/` folder, and
builds chatbots in worker processes (the local orchestrator). Configuration
comes from `MIMICAL_*` variables (see `mimical.config`); Ctrl-C stops it.

The HTTP server is gunicorn, as in the images (`services/*/main.py`): one worker
process (sessions, password tries, the model server and the builds live in it)
with a pool of threads that slow clients cannot tie up (`mimical.web.server`),
and the app built inside the worker, so its threads start after the fork.
"""

from __future__ import annotations

import argparse
import socket
import sys
from dataclasses import replace

from mimical.config import DEFAULT_TRAINING_MINUTES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the API, web chat, webhook and model server in one process",
        description="Serve the backend API, the web chat (/chat) and the Messenger webhook in"
        " one process, with the model server in-process and builds in worker processes."
        " Configuration comes from MIMICAL_* variables; Ctrl-C stops it.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="bound each training run (default MIMICAL_TRAINING_MAX_MINUTES, else"
        f" {DEFAULT_TRAINING_MINUTES:g} minutes)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="bound passes over the data")
    parser.set_defaults(func=run)


def load_into_app_models(app):
    """An `on_deployed` callback: load a new version in the app's in-process model server.

    The server would notice the version within its poll interval anyway; loading it
    before the chatbot turns Ready means nobody gets "model not loaded" in between.
    With a remote model server (`MIMICAL_MODEL_SERVER`) there is nothing to do here.
    """

    def on_deployed(name: str, version: int) -> None:
        from mimical.appkit.dialog_app import get_models
        from mimical.errors import UnavailableError

        with app.app_context():
            server = get_models().server
            if server is None:
                return
            loaded = server.repository.refresh()
        if loaded.get(name) != version:
            raise UnavailableError(f"the model server could not load version {version} of {name}")

    return on_deployed


def build_app(settings, train_options: dict | None = None):
    """The all-in-one app: every component, models loaded as soon as they are built."""
    from mimical.app import create_app

    app = create_app(settings, test_config={"MIMICAL_TRAIN_OPTIONS": train_options or {}})
    app.config["MIMICAL_ON_DEPLOYED"] = load_into_app_models(app)
    return app


def close_app(app) -> None:
    from mimical.appkit.dialog_app import close_dialog
    from mimical.appkit.resources import close_resources

    close_resources(app)
    close_dialog(app)


def run(args: argparse.Namespace) -> int:
    from mimical.config import Settings
    from mimical.errors import UnavailableError
    from mimical.web.server import run_gunicorn

    settings = Settings.from_env()
    settings.check_someone_answers()
    # The budget travels in the settings, which the local orchestrator reads.
    max_minutes = args.max_minutes or settings.training_max_minutes or DEFAULT_TRAINING_MINUTES
    settings = replace(settings, training_max_minutes=max_minutes)
    train_options = {"epochs": args.epochs} if args.epochs is not None else {}
    try:
        # Bind ourselves: gunicorn would retry a busy port, then exit with its own message.
        listener = socket.create_server((args.host, args.port))
    except OSError as error:
        raise UnavailableError(f"cannot listen on {args.host}:{args.port}: {error}") from None
    port = listener.getsockname()[1]
    metrics = f"; metrics: port {settings.metrics_port}" if settings.metrics_port else ""
    print(
        f"mimical serving on http://{args.host}:{port} "
        f"(chat: /chat, API docs: /docs; storage {settings.storage_root}{metrics})",
        file=sys.stderr,
    )
    # Closing the app stops builds (their processes) and the model server.
    run_gunicorn(listener, lambda: build_app(settings, train_options), close_app)
    return 0

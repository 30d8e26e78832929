"""`mimical serve`: the embedded all-in-one, nothing else to install or run.

    mimical serve                       # http://127.0.0.1:8080: API, /chat, /webhook, /docs
    mimical serve --host 0.0.0.0 --port 9000 --max-minutes 5

One process serves the backend API, the web chat and the Messenger webhook,
runs the model server in-process over the storage's `models/` folder, and
builds chatbots in worker processes (the local orchestrator). Configuration
comes from `MIMICAL_*` variables (see `mimical.config`); Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys


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
        "--max-minutes", type=float, default=None, help="bound each training run (minutes)"
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
        from mimical.errors import UnavailableError
        from mimical.web.dialog_app import get_models

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
    from mimical.web import create_app

    app = create_app(settings, test_config={"MIMICAL_TRAIN_OPTIONS": train_options or {}})
    app.config["MIMICAL_ON_DEPLOYED"] = load_into_app_models(app)
    return app


def close_app(app) -> None:
    from mimical.web.dialog_app import close_dialog
    from mimical.web.resources import close_resources

    close_resources(app)
    close_dialog(app)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from mimical.config import Settings
    from mimical.errors import UnavailableError

    settings = Settings.from_env()
    train_options = {
        key: value
        for key, value in (("max_minutes", args.max_minutes), ("epochs", args.epochs))
        if value is not None
    }
    app = build_app(settings, train_options)
    try:
        # Bind ourselves: werkzeug would print its own message and exit 1 on a busy port.
        listener = socket.create_server((args.host, args.port))
    except OSError as error:
        raise UnavailableError(f"cannot listen on {args.host}:{args.port}: {error}") from None
    server = make_server(args.host, args.port, app, threaded=True, fd=listener.fileno())
    print(
        f"mimical serving on http://{args.host}:{server.port} "
        f"(chat: /chat, API docs: /docs; storage {settings.storage_root})",
        file=sys.stderr,
    )
    # `docker stop` and Kubernetes send SIGTERM: shut down as cleanly as on Ctrl-C, so
    # build workers are stopped rather than orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        listener.close()
        close_app(app)
    return 0

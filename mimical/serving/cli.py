"""`mimical serve-models`: our TF Serving compatible model server.

    mimical serve-models --model-base s3://bucket/models --port 8500

Serves the newest version of every model under the base (TF Serving's layout:
`BASE/NAME/VERSION/`), picks up new models and versions without a restart, and
stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve-models",
        help="serve persona models over TF Serving's gRPC API",
        description="Serve the newest version of every model under a TF Serving model base"
        " (BASE/NAME/VERSION/) over gRPC, picking up new models and versions without a restart.",
    )
    parser.add_argument(
        "--model-base",
        help="folder or s3:// URL in TF Serving's layout (default: the storage root's models/)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    parser.add_argument(
        "--poll-seconds", type=float, default=2.0, help="how often to look for model changes"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mimical.config import Settings
    from mimical.serving.connect import model_base_for
    from mimical.serving.server import ModelServer

    settings = Settings.from_env()
    model_base = args.model_base or model_base_for(settings)
    server = ModelServer(
        model_base,
        host=args.host,
        port=args.port,
        settings=settings,
        poll_seconds=args.poll_seconds,
    ).start()
    loaded = server.repository.loaded()
    print(
        f"serving {len(loaded)} model(s) from {model_base} on {server.target}",
        file=sys.stderr,
        flush=True,
    )
    # SIGTERM (Kubernetes, `kill`) stops like Ctrl-C: finish calls in flight, then exit.
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=5.0))
    try:
        server.wait()
    finally:
        server.stop()
    return 0

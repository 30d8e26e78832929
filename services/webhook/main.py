"""The Messenger webhook and web chat service: mimical's `webhook` and `chat` components.

Run (from this folder, with mimical installed; the image does the same on 0.0.0.0):

    gunicorn --bind 127.0.0.1:8080 "main:create_service_app()"

Settings come from the environment (`MIMICAL_*`, `REDIS_URL`, `AWS_*`, see
mimical/config.py); `WEB_CONCURRENCY` sets gunicorn's worker count. The chart runs
it with `MIMICAL_MESSENGER_WORKERS=0`: it only stores and acknowledges Messenger
events, and `mimical messenger respond` beside it answers them.
"""

import atexit

from mimical.app import create_app
from mimical.appkit.dialog_app import close_dialog
from mimical.messenger.webhook import get_messenger
from mimical.web.server import BodyReadTimeout

COMPONENTS = ["webhook", "chat"]


def create_service_app() -> BodyReadTimeout:
    """gunicorn calls this once per worker, so each worker owns its clients and pools.

    Messenger threads, if any (`MIMICAL_MESSENGER_WORKERS`), start at once: with
    Redis they take over events a killed replica left pending without waiting for a
    first request. A worker that gunicorn stops (deploy, scale-down) finishes the
    event it is answering; the rest wait in Redis for the other replicas.
    """
    app = create_app(components=COMPONENTS)
    with app.app_context():
        get_messenger()
    atexit.register(close_dialog, app)
    return BodyReadTimeout(app)

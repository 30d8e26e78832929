"""A webhook replica in a process of its own, for tests that kill it.

    python -m tests.webhook.webhook_process PORT '{"MIMICAL_MESSENGER_QUEUE_OPTIONS": {...}}'

Served as `mimical serve` serves (`mimical.web.server.run_gunicorn`). Settings come
from the environment (`REDIS_URL`, `MIMICAL_*`, e.g. `MIMICAL_MESSENGER_WORKERS=0` to
leave answering to `mimical messenger respond`); the JSON argument is the app's test
config (queue keys and timings the image's command cannot take). The Messenger workers
start before the first request, as in the webhook image, so a fresh replica takes over
what a killed one left pending at once.
"""

from __future__ import annotations

import json
import socket
import sys


def main() -> None:
    from mimical.app import create_app
    from mimical.appkit.dialog_app import close_dialog
    from mimical.messenger.webhook import get_messenger
    from mimical.web.server import run_gunicorn

    port, config = int(sys.argv[1]), json.loads(sys.argv[2])

    def make_app():
        app = create_app(components=["webhook"], test_config=config)
        with app.app_context():
            get_messenger()  # its threads connect the dialog engine in the background
        return app

    run_gunicorn(socket.create_server(("127.0.0.1", port)), make_app, close_dialog)


if __name__ == "__main__":
    main()

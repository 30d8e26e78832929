"""A webhook replica in a process of its own, for tests and benchmarks that kill it.

    python -m tests.webhook.webhook_process PORT '{"MIMICAL_WEBHOOK_WORKERS": 2}'

Settings come from the environment (`REDIS_URL`, `MIMICAL_*`); the JSON argument is the
app's test config. The Messenger workers start before the first request, as in the
webhook image, so a fresh replica takes over what a killed one left pending at once.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    from mimical.web import create_app
    from mimical.web.dialog_app import get_engine, get_messenger

    port, config = int(sys.argv[1]), json.loads(sys.argv[2])
    reply_max_chars = config.pop("reply_max_chars", None)
    app = create_app(components=["webhook"], test_config=config)
    with app.app_context():
        if reply_max_chars:  # benchmarks: connect to the model server before listening
            get_engine().reply_max_chars = reply_max_chars
        get_messenger()  # the dialog engine (and TensorFlow) comes at the first event
    # Keep-alive with TCP_NODELAY, as gunicorn (the Kubernetes image) serves it.
    WSGIRequestHandler.protocol_version = "HTTP/1.1"
    WSGIRequestHandler.disable_nagle_algorithm = True
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


if __name__ == "__main__":
    main()

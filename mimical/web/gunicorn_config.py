"""gunicorn settings of the service images: the worker and limits `mimical serve` uses.

    gunicorn -c python:mimical.web.gunicorn_config --bind 0.0.0.0:8080 "main:create_service_app()"

Only the worker class, threads and timeouts (`mimical.web.server.WORKER_SETTINGS`);
the command line sets the address, and `WEB_CONCURRENCY` the number of worker processes.
"""

from mimical.web.server import WORKER_SETTINGS

globals().update(WORKER_SETTINGS)

"""gunicorn settings of the service images: the worker and limits `mimical serve` uses.

    gunicorn -c python:mimical.web.gunicorn_config --bind 0.0.0.0:8080 "main:create_service_app()"

Only the worker class, threads and timeouts (`mimical.web.server.WORKER_SETTINGS`);
the command line sets the address, and `WEB_CONCURRENCY` the number of worker processes.

Several workers count requests apart, so prometheus_client runs in multiprocess mode
(`mimical.appkit.metrics`): when gunicorn starts, before any worker, the workers get a
fresh directory for their counts (`PROMETHEUS_MULTIPROC_DIR`); a dead worker's live
gauges are dropped, and the directory goes when gunicorn stops.
"""

import os
import shutil
import tempfile

from mimical.appkit.metrics import MULTIPROCESS_DIR_VARIABLE
from mimical.web.server import WORKER_SETTINGS

globals().update(WORKER_SETTINGS)


def on_starting(server) -> None:
    """In the master, before any worker imports prometheus_client (which reads the
    variable once, at import). Always a new, empty directory: counts left from an
    earlier run would be added in."""
    os.environ[MULTIPROCESS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="mimical-metrics-")


def child_exit(server, worker) -> None:
    """A worker ended: its live gauges (uploads in progress, the Page's state) go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    shutil.rmtree(os.environ[MULTIPROCESS_DIR_VARIABLE], ignore_errors=True)

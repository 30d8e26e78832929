"""gunicorn settings of the service images: the worker and limits `mimical serve` uses.

    gunicorn -c python:mimical.web.gunicorn_config --bind 0.0.0.0:8080 "main:create_service_app()"

Only the worker class, threads and timeouts (`mimical.web.server.WORKER_SETTINGS`);
the command line sets the address, and `WEB_CONCURRENCY` the number of worker processes.

Several workers count requests apart, so prometheus_client runs in multiprocess mode
(`mimical.web.metrics`): this module, loaded by gunicorn's master before any worker
starts, gives them a fresh directory for their counts (`PROMETHEUS_MULTIPROC_DIR`),
drops a dead worker's gauges, and removes the directory when gunicorn stops.
"""

import os
import shutil
import tempfile

from mimical.web.metrics import MULTIPROCESS_DIR_VARIABLE
from mimical.web.server import WORKER_SETTINGS

globals().update(WORKER_SETTINGS)

# Always a new, empty directory: counts left from an earlier run would be added in. Set
# before any worker imports prometheus_client, which reads it once, at import.
_metrics_dir = tempfile.mkdtemp(prefix="mimical-metrics-")
os.environ[MULTIPROCESS_DIR_VARIABLE] = _metrics_dir


def child_exit(server, worker) -> None:
    """A worker ended: its live gauges (uploads in progress, the Page's state) go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)

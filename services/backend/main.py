"""The backend API service: mimical's `api` component behind gunicorn.

Run (from this folder, with mimical installed; the image does the same on 0.0.0.0):

    gunicorn --bind 127.0.0.1:8080 "main:create_service_app()"

Settings come from the environment (`MIMICAL_*`, `REDIS_URL`, `AWS_*`, see
mimical/config.py); `WEB_CONCURRENCY` sets gunicorn's worker count.
"""

from mimical.app import create_app
from mimical.web.server import BodyReadTimeout

COMPONENTS = ["api", "suggestions", "away"]


def create_service_app() -> BodyReadTimeout:
    """gunicorn calls this once per worker, so each worker owns its clients and pools.

    A large body (an upload) that stops arriving is a 408, not a thread held forever.
    """
    return BodyReadTimeout(create_app(components=COMPONENTS))

"""What every component of the app factory (`mimical.app.create_app`) reads from it.

Components import this module, not the factory's package: the factory imports the
components (and the metrics port), so it stands above them, and this leaf below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from mimical.config import Settings

# Where `create_app` keeps the Settings in the app's config (read with `get_settings`).
SETTINGS_KEY = "MIMICAL_SETTINGS"


def error_response(status: int, code: str, message: str):
    """The one error shape every endpoint answers with."""
    from flask import jsonify

    return jsonify(error=code, message=message), status


def get_settings(app: Flask | None = None) -> Settings:
    """`app`'s settings (the current app's if none is given): the one way to read them.

    `create_app` keeps them in the app's config; components read them here rather than
    by that key, in a request or, with `app` given, while they are set up.
    """
    from flask import current_app

    return (app or current_app).config[SETTINGS_KEY]

"""The dialog shared by every channel (`engine`), its state (`sessions`) and `mimical chat`.

`create_engine(settings, models)` wires the engine to the registry and to Redis or
memory as `Settings` say.
"""

from __future__ import annotations

from mimical.config import Settings


def create_engine(settings: Settings, models, directory=None, password_tries=None):
    """A `DialogEngine` with sessions in Redis or memory per `settings`.

    `directory` is the persona registry of this mode (the web passes the
    orchestrator's); by default the embedded SQLite registry. `password_tries` are
    the counts shared with the other channels of this process (the web passes the
    API's); by default new ones on the same Redis or memory.
    """
    from mimical.dialog.engine import DialogEngine
    from mimical.dialog.sessions import PasswordTries, open_session_store
    from mimical.registry import open_registry

    return DialogEngine(
        directory if directory is not None else open_registry(settings),
        models,
        open_session_store(settings),
        password_tries if password_tries is not None else PasswordTries(settings),
    )

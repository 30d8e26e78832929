"""The dialog shared by every channel (`engine`), its state (`sessions`) and `mimical chat`.

`create_engine(settings, models, directory)` wires the engine to a persona directory
(the registry: `mimical.orchestration.open_registry(settings)`) and to Redis or memory as
`Settings` say. The dialog knows the registry only through its `PersonaDirectory`
protocol (`mimical.dialog.engine`).
"""

from __future__ import annotations

from mimical.config import Settings


def create_engine(settings: Settings, models, directory, password_tries=None):
    """A `DialogEngine` over `directory` (a `PersonaDirectory`) with sessions in Redis or
    memory per `settings`.

    `password_tries` are the wrong-password counts shared with the other channels of this
    process (the web passes the API's); by default new ones on the same Redis or memory.
    """
    from mimical.dialog.engine import DialogEngine
    from mimical.dialog.sessions import PasswordTries, open_session_store

    return DialogEngine(
        directory,
        models,
        open_session_store(settings),
        password_tries if password_tries is not None else PasswordTries(settings),
    )

"""Reach the persona models for a `Settings`: a remote model server or one in-process.

`Settings.model_server` (host:port) points at TF Serving or `mimical serve-models`;
left empty (embedded mode) we start our model server inside this process over the
storage root's `models/` folder, so `mimical chat`, `mimical serve` and the demo
work with nothing else running.

Usage:

    with connect_models(settings) as models:
        models.client.reply("alice", "hi")
"""

from __future__ import annotations

from dataclasses import dataclass

from mimical.config import Settings
from mimical.serving.client import ModelClient


def model_base_for(settings: Settings) -> str:
    """TF Serving's model base path inside the storage root (see `mimical.storage`)."""
    return settings.storage_root.rstrip("/") + "/models"


@dataclass
class ModelConnection:
    client: ModelClient
    server: object | None = None  # the in-process ModelServer, when we started one

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> ModelConnection:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def connect_models(settings: Settings) -> ModelConnection:
    if settings.model_server:
        return ModelConnection(ModelClient(settings.model_server))
    import importlib.util

    from mimical.errors import UnavailableError

    if importlib.util.find_spec("tensorflow") is None:  # the webhook image has none
        raise UnavailableError(
            "no model server: set MIMICAL_MODEL_SERVER (host:port of TF Serving or "
            "`mimical serve-models`); this install has no TensorFlow to run one itself"
        )
    from mimical.serving.server import ModelServer

    server = ModelServer(model_base_for(settings), settings=settings)
    server.start()
    return ModelConnection(ModelClient(server.target), server)

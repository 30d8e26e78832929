"""Our TF Serving stand-in: PredictionService and ModelService over a model base.

TF Serving's `tensorflow_model_server` cannot be installed everywhere mimical runs
(embedded mode, tests, CI), so this serves the same gRPC API from Python:
`Predict`, `GetModelMetadata` (signature_def) and `GetModelStatus`, for the newest
version of every model under a TF Serving model base, polled for changes so new
models and versions load (and deleted ones unload) without a restart. The client
in `mimical.serving.client` cannot tell it from the real thing. The services
themselves are in `mimical.serving.servicers`; this module runs and polls them.

Run it:

    mimical serve-models --model-base ~/.local/share/mimical/storage/models --port 8500

or in-process:

    with ModelServer("/srv/models").start() as server:
        ModelClient(server.target).reply("alice", "hi")
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

from mimical.config import Settings
from mimical.serving.repository import ModelRepository

log = logging.getLogger(__name__)


class ModelServer:
    """A gRPC server for one model base, with a thread that polls it for changes.

    `max_workers` bounds the calls in flight, and so the batch size of a signature.
    """

    def __init__(
        self,
        model_base: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: Settings | None = None,
        poll_seconds: float = 2.0,
        max_workers: int = 32,
    ):
        self.repository = ModelRepository(model_base, settings)
        self.host = host
        self.port = port
        self.poll_seconds = poll_seconds
        self.max_workers = max_workers
        self._server = None
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ModelServer:
        """Load what is there now, then listen (port 0 picks a free port)."""
        import grpc

        from mimical.errors import UnavailableError
        from mimical.serving.servicers import add_servicers

        self.repository.refresh()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers))
        add_servicers(self.repository, self._server)
        try:
            self.port = self._server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError as error:
            raise UnavailableError(f"cannot listen on {self.host}:{self.port}: {error}") from None
        self._server.start()
        self._poller = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._poller.start()
        log.info("serving %s on %s", self.repository.model_base, self.target)
        return self

    def _poll(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            try:
                self.repository.refresh()
            except Exception as error:  # storage hiccups must not kill the poller
                log.warning("cannot scan %s: %s", self.repository.model_base, error)

    def wait(self) -> None:
        self._server.wait_for_termination()

    def stop(self, grace: float = 1.0) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace).wait()
        if self._poller is not None:
            self._poller.join()
        self.repository.close()

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

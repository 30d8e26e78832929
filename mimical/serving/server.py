"""Our TF Serving stand-in: PredictionService and ModelService over a model base.

TF Serving's `tensorflow_model_server` cannot be installed everywhere mimical runs
(embedded mode, tests, CI), so this serves the same gRPC API from Python:
`Predict`, `GetModelMetadata` (signature_def) and `GetModelStatus`, for the newest
version of every model under a TF Serving model base, polled for changes so new
models and versions load (and deleted ones unload) without a restart. The client
in `mimical.serving.client` cannot tell it from the real thing.

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
from mimical.errors import NotFoundError
from mimical.serving.repository import ModelRepository

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"


def _servicers(repository: ModelRepository):
    """Build the two servicer classes (their bases come from the heavy TF Serving protos)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    def find_model(model_spec, context):
        version = model_spec.version.value if model_spec.HasField("version") else None
        try:
            return repository.get(model_spec.name, version)
        except NotFoundError as error:
            context.abort(grpc.StatusCode.NOT_FOUND, str(error))

    def fill_spec(spec, model, signature_name=""):
        spec.name = model.name
        spec.version.value = model.version
        if signature_name:
            spec.signature_name = signature_name

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (gRPC method name)
            model = find_model(request.model_spec, context)
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            function = model.signatures.get(signature_name)
            if function is None:
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"model {model.name!r} has no signature {signature_name!r} "
                    f"(it has {sorted(model.signatures)})",
                )
            specs = function.structured_input_signature[1]
            missing = sorted(set(specs) - set(request.inputs))
            unknown = sorted(set(request.inputs) - set(specs))
            if missing or unknown:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"signature {signature_name!r} inputs: missing {missing}, unknown {unknown}",
                )
            try:
                inputs = {key: tf.make_ndarray(request.inputs[key]) for key in specs}
                outputs = model.batchers[signature_name](inputs)
            except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error).splitlines()[0])
            response = predict_pb2.PredictResponse()
            fill_spec(response.model_spec, model, signature_name)
            wanted = set(request.output_filter) or set(outputs)
            for key, value in outputs.items():
                if key in wanted:
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

        def GetModelMetadata(self, request, context):  # noqa: N802
            model = find_model(request.model_spec, context)
            if list(request.metadata_field) != ["signature_def"]:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "metadata_field must be exactly ['signature_def']",
                )
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            fill_spec(response.model_spec, model)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for name, signature in model.signature_defs.items():
                signature_map.signature_def[name].CopyFrom(signature)
            response.metadata["signature_def"].Pack(signature_map)
            return response

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):  # noqa: N802
            model = find_model(request.model_spec, context)
            response = get_model_status_pb2.GetModelStatusResponse()
            status = response.model_version_status.add()
            status.version = model.version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            return response

    return (
        (PredictionService(), prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server),
        (ModelService(), model_service_pb2_grpc.add_ModelServiceServicer_to_server),
    )


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

        self.repository.refresh()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers))
        for servicer, add_to_server in _servicers(self.repository):
            add_to_server(servicer, self._server)
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

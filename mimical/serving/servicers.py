"""The gRPC services of our model server: TF Serving's PredictionService and ModelService.

`mimical.serving.server.ModelServer` imports this module when it starts: the
servicers' base classes come from TensorFlow Serving's protos, which load
TensorFlow, and `mimical --help` must not pay for that. Every call names a model
(and maybe a version) the repository has loaded; an unknown one is NOT_FOUND,
as from TF Serving.
"""

from __future__ import annotations

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from mimical.errors import NotFoundError
from mimical.serving.repository import LoadedModel, ModelRepository

DEFAULT_SIGNATURE = "serving_default"


def add_servicers(repository: ModelRepository, server: grpc.Server) -> None:
    """Serve both services of `repository` on `server` (before it starts)."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(repository), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)


def find_model(repository: ModelRepository, model_spec, context) -> LoadedModel:
    version = model_spec.version.value if model_spec.HasField("version") else None
    try:
        return repository.get(model_spec.name, version)
    except NotFoundError as error:
        context.abort(grpc.StatusCode.NOT_FOUND, str(error))


def fill_spec(spec, model: LoadedModel, signature_name: str = "") -> None:
    """The `model_spec` of a response: which model and version answered."""
    spec.name = model.name
    spec.version.value = model.version
    if signature_name:
        spec.signature_name = signature_name


# ---------------------------------------------------------------- Predict


def find_signature(model: LoadedModel, signature_name: str, context):
    function = model.signatures.get(signature_name)
    if function is None:
        context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"model {model.name!r} has no signature {signature_name!r} "
            f"(it has {sorted(model.signatures)})",
        )
    return function


def read_inputs(request, function, signature_name: str, context) -> dict:
    """The request's tensors as arrays: exactly the signature's inputs, no more, no fewer."""
    specs = function.structured_input_signature[1]
    missing = sorted(set(specs) - set(request.inputs))
    unknown = sorted(set(request.inputs) - set(specs))
    if missing or unknown:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"signature {signature_name!r} inputs: missing {missing}, unknown {unknown}",
        )
    return {key: tf.make_ndarray(request.inputs[key]) for key in specs}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository):
        self.repository = repository

    def Predict(self, request, context):
        model = find_model(self.repository, request.model_spec, context)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        function = find_signature(model, signature_name, context)
        try:
            inputs = read_inputs(request, function, signature_name, context)
            # Concurrent calls of one signature run as one batch (`Batcher`).
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

    def GetModelMetadata(self, request, context):
        model = find_model(self.repository, request.model_spec, context)
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


# ---------------------------------------------------------------- ModelService


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self.repository = repository

    def GetModelStatus(self, request, context):
        model = find_model(self.repository, request.model_spec, context)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = model.version
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

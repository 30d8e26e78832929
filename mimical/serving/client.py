"""Client for TF Serving's gRPC PredictionService, used for every persona reply.

It speaks the standard `tensorflow-serving-api` protocol, so the same code talks to
our `mimical serve-models` (embedded mode, tests) and to `tensorflow_model_server`
in Kubernetes. The model name is the persona name; the signature is `reply` with
all four inputs (`context`, `temperature`, `max_chars`, `seed`). Failures become
the errors the dialog can explain: `NotFoundError` for an unknown model,
`UnavailableError` when the server is down or slower than the deadline. gRPC
itself retries UNAVAILABLE with exponential backoff (its retry policy in the
channel's service config), inside the call's deadline.

Usage:

    client = ModelClient("127.0.0.1:8500")
    client.reply("alice", "hey, how was your weekend?", timeout=5)
"""

from __future__ import annotations

import json
import secrets

from mimical.errors import InputError, NotFoundError, UnavailableError

REPLY_SIGNATURE = "reply"
# gRPC's own retry policy: transparent, jittered, bounded by each call's deadline.
RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": "tensorflow.serving.PredictionService"},
                    {"service": "tensorflow.serving.ModelService"},
                ],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def _string_tensor(values: list[str]):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]
        ),
        string_val=[value.encode("utf-8") for value in values],
    )


def _scalar_batch(dtype_name: str, value):
    """A [1] tensor of `value`, built straight from protos (no TensorFlow ops needed)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    fields = {"DT_FLOAT": "float_val", "DT_INT32": "int_val", "DT_INT64": "int64_val"}
    tensor = tensor_pb2.TensorProto(
        dtype=getattr(types_pb2, dtype_name),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]
        ),
    )
    getattr(tensor, fields[dtype_name]).append(value)
    return tensor


def _batch(dtype_name: str, values: list):
    """A [len(values)] tensor of one numeric type (`_scalar_batch` for many rows)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    fields = {"DT_FLOAT": "float_val", "DT_INT32": "int_val", "DT_INT64": "int64_val"}
    tensor = tensor_pb2.TensorProto(
        dtype=getattr(types_pb2, dtype_name),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]
        ),
    )
    getattr(tensor, fields[dtype_name]).extend(values)
    return tensor


class ModelClient:
    """A channel to one model server; thread-safe, made once and shared."""

    def __init__(self, target: str):
        import grpc

        # Imported here, not at the first reply: these protos pull in TensorFlow, seconds
        # of holding the GIL that would otherwise stall a serving process mid-traffic.
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.target = target
        self._channel = grpc.insecure_channel(
            target,
            options=[("grpc.enable_retries", 1), ("grpc.service_config", RETRY_SERVICE_CONFIG)],
        )
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model_service = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def reply(
        self,
        model: str,
        context: str,
        *,
        temperature: float = 1.0,
        max_chars: int = 200,
        seed: int | None = None,
        timeout: float = 10.0,
    ) -> str:
        """The persona's reply to `context` (the recent turns, newest last); `temperature`
        1 samples the persona's calibrated distribution (`ModelConfig.temperature`)."""
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = REPLY_SIGNATURE
        request.inputs["context"].CopyFrom(_string_tensor([context]))
        request.inputs["temperature"].CopyFrom(_scalar_batch("DT_FLOAT", temperature))
        request.inputs["max_chars"].CopyFrom(_scalar_batch("DT_INT32", max_chars))
        # A fresh seed per call unless the caller wants a repeatable reply.
        seed = secrets.randbits(62) if seed is None else seed
        request.inputs["seed"].CopyFrom(_scalar_batch("DT_INT64", seed))
        response = self._call(model, self._predict.Predict, request, timeout)
        values = response.outputs["reply"].string_val
        if not values:
            raise UnavailableError(f"model {model!r} on {self.target} returned no reply")
        return values[0].decode("utf-8", errors="replace")

    def replies(
        self,
        model: str,
        context: str,
        count: int,
        *,
        temperature: float = 1.0,
        max_chars: int = 200,
        timeout: float = 10.0,
    ) -> list[str]:
        """`count` independent replies to one `context` in one Predict call.

        The `reply` signature's rows are independent, so the batch repeats the context
        with a fresh seed per row: n candidates cost one model step loop, not n.
        """
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = REPLY_SIGNATURE
        request.inputs["context"].CopyFrom(_string_tensor([context] * count))
        request.inputs["temperature"].CopyFrom(_batch("DT_FLOAT", [temperature] * count))
        request.inputs["max_chars"].CopyFrom(_batch("DT_INT32", [max_chars] * count))
        seeds = [secrets.randbits(62) for _ in range(count)]
        request.inputs["seed"].CopyFrom(_batch("DT_INT64", seeds))
        response = self._call(model, self._predict.Predict, request, timeout)
        values = response.outputs["reply"].string_val
        if len(values) != count:
            raise UnavailableError(
                f"model {model!r} on {self.target} returned {len(values)} of {count} replies"
            )
        return [value.decode("utf-8", errors="replace") for value in values]

    def status(self, model: str, *, timeout: float = 5.0) -> int:
        """The version of `model` the server has available; `NotFoundError` if none."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        response = self._call(model, self._model_service.GetModelStatus, request, timeout)
        available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        versions = [s.version for s in response.model_version_status if s.state == available]
        if not versions:
            raise NotFoundError(f"model {model!r} has no available version on {self.target}")
        return max(versions)

    def _call(self, model: str, method, request, timeout: float):
        import grpc

        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
            if code == grpc.StatusCode.NOT_FOUND:
                raise NotFoundError(f"model {model!r} is not served by {self.target}") from None
            if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
                raise InputError(f"model {model!r} rejected the request: {details}") from None
            raise UnavailableError(
                f"model server {self.target} did not answer for {model!r}: {code.name}"
            ) from None

    def close(self) -> None:
        self._channel.close()

"""Client for TF Serving's gRPC PredictionService, used for every persona reply.

It speaks the standard `tensorflow-serving-api` protocol, so the same code talks to
our `mimical serve-models` (embedded mode, tests) and to `tensorflow_model_server`
in Kubernetes. The model name is the persona name; the signature is `reply` with
all four inputs (`context`, `temperature`, `max_chars`, `seed`). Failures become
the errors the dialog can explain: `NotFoundError` for an unknown model,
`UnavailableError` when the server is down or slower than the deadline. gRPC
itself retries UNAVAILABLE with exponential backoff (its retry policy in the
channel's service config), inside the call's deadline.

The client does not import TensorFlow (seconds of start-up, hundreds of MB): the
few TF Serving messages it sends and reads are declared here, field for field as
in `tensorflow_serving/apis/*.proto` and `tensorflow/core/framework/*.proto`, in a
descriptor pool of their own (`_protos()`), so a Messenger responder answers within
a second of starting. tests/serving/test_client_protos.py checks them against
`tensorflow-serving-api` byte for byte.

Usage:

    client = ModelClient("127.0.0.1:8500")
    client.reply("alice", "hey, how was your weekend?", timeout=5)
"""

from __future__ import annotations

import functools
import json
import secrets
from types import SimpleNamespace

from mimical.errors import InputError, NotFoundError, UnavailableError

REPLY_SIGNATURE = "reply"
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
MODEL_STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"
# tensorflow.DataType values (types.proto) and ModelVersionStatus.State.AVAILABLE.
DT_FLOAT, DT_INT32, DT_STRING, DT_INT64 = 1, 3, 7, 9
AVAILABLE = 30
# The subset of TF Serving's messages the client uses: {message: [(field, number, type,
# repeated)]}, where type is a scalar type name or another message of this table. Enums
# are int32 on the wire, so they are declared so. Fields we never read are kept by
# protobuf as unknown fields, so anything else a server sends is harmless.
PROTO_MESSAGES = {
    "Dim": [("size", 1, "int64", False), ("name", 2, "string", False)],
    "TensorShapeProto": [("dim", 2, "Dim", True), ("unknown_rank", 3, "bool", False)],
    "TensorProto": [
        ("dtype", 1, "int32", False),
        ("tensor_shape", 2, "TensorShapeProto", False),
        ("version_number", 3, "int32", False),
        ("tensor_content", 4, "bytes", False),
        ("float_val", 5, "float", True),
        ("double_val", 6, "double", True),
        ("int_val", 7, "int32", True),
        ("string_val", 8, "bytes", True),
        ("int64_val", 10, "int64", True),
    ],
    "Int64Value": [("value", 1, "int64", False)],
    "ModelSpec": [
        ("name", 1, "string", False),
        ("version", 2, "Int64Value", False),
        ("signature_name", 3, "string", False),
        ("version_label", 4, "string", False),
    ],
    "PredictRequest": [
        ("model_spec", 1, "ModelSpec", False),
        ("inputs", 2, "map<TensorProto>", False),
        ("output_filter", 3, "string", True),
    ],
    "PredictResponse": [
        ("outputs", 1, "map<TensorProto>", False),
        ("model_spec", 2, "ModelSpec", False),
    ],
    "GetModelStatusRequest": [("model_spec", 1, "ModelSpec", False)],
    "StatusProto": [("error_code", 1, "int32", False), ("error_message", 2, "string", False)],
    "ModelVersionStatus": [
        ("version", 1, "int64", False),
        ("state", 2, "int32", False),
        ("status", 3, "StatusProto", False),
    ],
    "GetModelStatusResponse": [("model_version_status", 1, "ModelVersionStatus", True)],
}


@functools.cache
def _protos() -> SimpleNamespace:
    """Message classes for `PROTO_MESSAGES`, in a descriptor pool of their own (so they
    never clash with TensorFlow's, which the in-process model server loads)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field_proto = descriptor_pb2.FieldDescriptorProto
    package = "mimical.tfserving"
    file = descriptor_pb2.FileDescriptorProto(
        name="mimical/tfserving_subset.proto", package=package, syntax="proto3"
    )

    def add_field(message, name: str, number: int, kind: str, repeated: bool) -> None:
        field = message.field.add(name=name, number=number, json_name=name)
        field.label = field_proto.LABEL_REPEATED if repeated else field_proto.LABEL_OPTIONAL
        if kind in PROTO_MESSAGES:
            field.type, field.type_name = field_proto.TYPE_MESSAGE, f".{package}.{kind}"
        else:
            field.type = getattr(field_proto, f"TYPE_{kind.upper()}")

    for name, fields in PROTO_MESSAGES.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            if kind.startswith("map<"):  # map<string, V>: a repeated nested entry message
                entry = message.nested_type.add(name=f"{field_name.title()}Entry")
                entry.options.map_entry = True
                add_field(entry, "key", 1, "string", False)
                add_field(entry, "value", 2, kind[4:-1], False)
                field = message.field.add(name=field_name, number=number, json_name=field_name)
                field.label, field.type = field_proto.LABEL_REPEATED, field_proto.TYPE_MESSAGE
                field.type_name = f".{package}.{name}.{entry.name}"
            else:
                add_field(message, field_name, number, kind, repeated)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return SimpleNamespace(
        **{
            name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in PROTO_MESSAGES
        }
    )


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


def _tensor(dtype: int, field: str, values: list):
    """A [len(values)] tensor, built straight from protos (no TensorFlow needed)."""
    protos = _protos()
    tensor = protos.TensorProto(
        dtype=dtype, tensor_shape=protos.TensorShapeProto(dim=[protos.Dim(size=len(values))])
    )
    getattr(tensor, field).extend(values)
    return tensor


def predict_request(model: str, context: str, temperature: float, max_chars: int, *seeds: int):
    """The `reply` signature's PredictRequest: all four inputs, one row per seed (the
    rows are independent: one context, several seeds, several replies in one call)."""
    rows = len(seeds)
    request = _protos().PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = REPLY_SIGNATURE
    inputs = request.inputs
    inputs["context"].CopyFrom(_tensor(DT_STRING, "string_val", [context.encode()] * rows))
    inputs["temperature"].CopyFrom(_tensor(DT_FLOAT, "float_val", [temperature] * rows))
    inputs["max_chars"].CopyFrom(_tensor(DT_INT32, "int_val", [max_chars] * rows))
    inputs["seed"].CopyFrom(_tensor(DT_INT64, "int64_val", list(seeds)))
    return request


class ModelClient:
    """A channel to one model server; thread-safe, made once and shared."""

    def __init__(self, target: str):
        import grpc

        protos = _protos()
        self.target = target
        self._channel = grpc.insecure_channel(
            target,
            options=[("grpc.enable_retries", 1), ("grpc.service_config", RETRY_SERVICE_CONFIG)],
        )
        self._predict = self._channel.unary_unary(
            PREDICT_METHOD,
            request_serializer=protos.PredictRequest.SerializeToString,
            response_deserializer=protos.PredictResponse.FromString,
        )
        self._model_status = self._channel.unary_unary(
            MODEL_STATUS_METHOD,
            request_serializer=protos.GetModelStatusRequest.SerializeToString,
            response_deserializer=protos.GetModelStatusResponse.FromString,
        )

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
        # A fresh seed per call unless the caller wants a repeatable reply.
        seed = secrets.randbits(62) if seed is None else seed
        request = predict_request(model, context, temperature, max_chars, seed)
        response = self._call(model, self._predict, request, timeout)
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
        seeds = [secrets.randbits(62) for _ in range(count)]
        request = predict_request(model, context, temperature, max_chars, *seeds)
        response = self._call(model, self._predict, request, timeout)
        values = response.outputs["reply"].string_val
        if len(values) != count:
            raise UnavailableError(
                f"model {model!r} on {self.target} returned {len(values)} of {count} replies"
            )
        return [value.decode("utf-8", errors="replace") for value in values]

    def status(self, model: str, *, timeout: float = 5.0) -> int:
        """The version of `model` the server has available; `NotFoundError` if none."""
        request = _protos().GetModelStatusRequest()
        request.model_spec.name = model
        response = self._call(model, self._model_status, request, timeout)
        versions = [s.version for s in response.model_version_status if s.state == AVAILABLE]
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

"""The model client's own TF Serving messages against `tensorflow-serving-api`'s, byte for byte,
and a client that starts without TensorFlow."""

from __future__ import annotations

import subprocess
import sys
import time

from mimical.serving import client

TF_FREE_START = """
import sys, time
started = time.perf_counter()
from mimical.serving.client import ModelClient
ModelClient("127.0.0.1:1").close()
print(time.perf_counter() - started)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_serving")))
"""


def test_the_client_starts_without_tensorflow_in_well_under_a_second():
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", TF_FREE_START], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[1] == "[]"  # no TensorFlow module at all
    assert float(out[0]) < 1.0, out
    assert time.perf_counter() - started < 10  # the interpreter itself, on a loaded machine


def tensorflow_request():
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    def tensor(dtype, field, values):
        shape = tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]
        )
        proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape)
        getattr(proto, field).extend(values)
        return proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "alice"
    request.model_spec.signature_name = "reply"
    request.inputs["context"].CopyFrom(
        tensor(types_pb2.DT_STRING, "string_val", ["héllo 👋".encode()])
    )
    request.inputs["temperature"].CopyFrom(tensor(types_pb2.DT_FLOAT, "float_val", [0.8]))
    request.inputs["max_chars"].CopyFrom(tensor(types_pb2.DT_INT32, "int_val", [200]))
    request.inputs["seed"].CopyFrom(tensor(types_pb2.DT_INT64, "int64_val", [2**61 + 7]))
    return request


def test_a_predict_request_is_tensorflow_servings_byte_for_byte():
    from tensorflow_serving.apis import predict_pb2

    ours = client.predict_request("alice", "héllo 👋", 0.8, 200, 2**61 + 7)
    theirs = tensorflow_request()
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    assert predict_pb2.PredictRequest.FromString(ours.SerializeToString()) == theirs


def test_one_request_carries_a_row_per_seed():
    """`replies` asks for several drafts with the same builder: one context, n seeds."""
    request = client.predict_request("alice", "hi", 0.8, 200, 1, 2, 3)
    for name in ("context", "temperature", "max_chars", "seed"):
        assert [dim.size for dim in request.inputs[name].tensor_shape.dim] == [3]
    assert list(request.inputs["context"].string_val) == [b"hi"] * 3
    assert list(request.inputs["seed"].int64_val) == [1, 2, 3]


def test_tensorflow_servings_answers_read_the_same():
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

    response = predict_pb2.PredictResponse()
    response.model_spec.name = "alice"
    response.model_spec.version.value = 3
    response.outputs["reply"].CopyFrom(
        tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=["ça va\nyou?".encode()])
    )
    ours = client._protos().PredictResponse.FromString(response.SerializeToString())
    assert ours.outputs["reply"].string_val[0].decode() == "ça va\nyou?"
    assert ours.model_spec.version.value == 3

    status = get_model_status_pb2.GetModelStatusResponse()
    for version, state in ((1, "END"), (2, "AVAILABLE"), (3, "LOADING")):
        entry = status.model_version_status.add(version=version)
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
    ours = client._protos().GetModelStatusResponse.FromString(status.SerializeToString())
    assert [(s.version, s.state == client.AVAILABLE) for s in ours.model_version_status] == [
        (1, False),
        (2, True),
        (3, False),
    ]

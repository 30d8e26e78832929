"""Our PredictionService/ModelService over real gRPC sockets, with the tiny model."""

from __future__ import annotations

import shutil
import subprocess
import sys

import grpc
import pytest

from mimical.errors import InputError, NotFoundError, UnavailableError
from mimical.serving.client import ModelClient
from mimical.serving.server import ModelServer
from mimical.testing.servers import free_port, wait_for, wait_for_port
from tests.fixtures.chat import PUBLIC


def test_reply_returns_text_within_max_chars(served_models):
    reply = served_models.client.reply(PUBLIC, "hey\nhow was your weekend?", max_chars=40, seed=7)
    assert isinstance(reply, str) and 0 < len(reply) <= 40
    # The same seed gives the same reply: the sampling is seeded in the graph.
    again = served_models.client.reply(PUBLIC, "hey\nhow was your weekend?", max_chars=40, seed=7)
    assert again == reply


def test_unknown_model_is_not_found(served_models):
    with pytest.raises(NotFoundError, match="'nobody'"):
        served_models.client.reply("nobody", "hi")
    with pytest.raises(NotFoundError):
        served_models.client.status("nobody")


def test_server_down_is_unavailable():
    client = ModelClient(f"127.0.0.1:{free_port()}")
    with pytest.raises(UnavailableError, match="did not answer"):
        client.reply(PUBLIC, "hi", timeout=2)
    client.close()


def test_status_and_metadata_follow_tf_serving(served_models):
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        prediction_service_pb2_grpc,
    )

    assert served_models.client.status(PUBLIC) == 1
    channel = grpc.insecure_channel(served_models.target)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = PUBLIC
    request.metadata_field.append("signature_def")
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert response.model_spec.version.value == 1
    assert {"reply", "serving_default"} <= set(signatures.signature_def)
    reply = signatures.signature_def["reply"]
    assert set(reply.inputs) == {"context", "temperature", "max_chars", "seed"}
    assert set(reply.outputs) == {"reply", "retrieved"}
    channel.close()


def test_missing_inputs_are_invalid_argument(served_models):
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    context = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape={"dim": [{"size": 1}]}, string_val=[b"hi"]
    )
    channel = grpc.insecure_channel(served_models.target)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = PUBLIC
    request.model_spec.signature_name = "reply"
    request.inputs["context"].CopyFrom(context)
    with pytest.raises(grpc.RpcError) as caught:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing" in caught.value.details()
    channel.close()


def test_unknown_signature_is_refused(served_models, monkeypatch):
    from mimical.serving import client as client_module

    monkeypatch.setattr(client_module, "REPLY_SIGNATURE", "nope")
    client = ModelClient(served_models.target)
    try:
        with pytest.raises(InputError, match="no signature 'nope'"):
            client.reply(PUBLIC, "hi")
    finally:
        client.close()


def test_new_versions_and_models_load_and_deleted_ones_unload(tmp_path, served_models):
    export = served_models.export_dir
    shutil.copytree(export, tmp_path / "alice" / "1")
    with ModelServer(str(tmp_path), poll_seconds=0.1).start() as server:
        client = ModelClient(server.target)
        assert client.status("alice") == 1
        # A half-written version (no saved_model.pb yet) is not picked up: a scan
        # that sees it (this one, or the poller's) keeps version 1.
        (tmp_path / "alice" / "2").mkdir()
        shutil.copytree(export / "variables", tmp_path / "alice" / "2" / "variables")
        assert server.repository.refresh() == {"alice": 1}
        assert client.status("alice") == 1
        shutil.rmtree(tmp_path / "alice" / "2")
        # A complete new version and a new model are served without a restart.
        shutil.copytree(export, tmp_path / "alice" / "3")
        shutil.copytree(export, tmp_path / "bob" / "1")
        wait_for(
            "versions 3 and 1 loaded",
            lambda: server.repository.loaded() == {"alice": 3, "bob": 1},
            timeout=30.0,
        )
        assert client.status("alice") == 3
        assert client.reply("bob", "hi", max_chars=10)
        # Deleting a model's folder unloads it.
        shutil.rmtree(tmp_path / "bob")
        wait_for("bob unloaded", lambda: "bob" not in server.repository.loaded(), timeout=30.0)
        with pytest.raises(NotFoundError):
            client.reply("bob", "hi")
        client.close()


def test_broken_version_keeps_the_previous_one_serving(tmp_path, served_models):
    shutil.copytree(served_models.export_dir, tmp_path / "alice" / "1")
    (tmp_path / "alice" / "2").mkdir()
    (tmp_path / "alice" / "2" / "saved_model.pb").write_bytes(b"not a saved model")
    with ModelServer(str(tmp_path), poll_seconds=0.1).start() as server:
        assert server.repository.loaded() == {"alice": 1}


def test_models_load_from_s3(s3_endpoint, s3_bucket, served_models):
    from mimical.config import Settings
    from mimical.storage import open_storage

    settings = Settings(s3_endpoint_url=s3_endpoint)
    storage = open_storage(f"s3://{s3_bucket}/root", settings)
    storage.put_tree("models/alice/4/", served_models.export_dir)
    with ModelServer(
        f"s3://{s3_bucket}/root/models", settings=settings, poll_seconds=0.2
    ).start() as server:
        client = ModelClient(server.target)
        assert client.status("alice") == 4
        assert client.reply("alice", "hi", max_chars=10)
        storage.delete_prefix("models/alice/")
        wait_for("every model unloaded", lambda: not server.repository.loaded(), timeout=30.0)
        client.close()


@pytest.mark.slow
def test_serve_models_command(served_models, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mimical.cli",
            "serve-models",
            "--model-base",
            str(served_models.model_base),
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process, timeout=60)
        client = ModelClient(f"127.0.0.1:{port}")
        assert client.status(PUBLIC) == 1
        client.close()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"serving 2 model(s) from {served_models.model_base} on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr


def test_concurrent_calls_are_batched_without_changing_replies(served_models, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from mimical.serving.batching import Batcher

    client, contexts = served_models.client, [f"message number {i}" for i in range(24)]
    alone = [client.reply(PUBLIC, text, seed=i, max_chars=30) for i, text in enumerate(contexts)]
    batch_sizes = []
    run = Batcher.run

    def counting_run(self, inputs):  # records batch sizes, then runs as usual
        batch_sizes.append(len(inputs["context"]))
        return run(self, inputs)

    monkeypatch.setattr(Batcher, "run", counting_run)
    with ThreadPoolExecutor(12) as pool:
        together = list(
            pool.map(
                lambda i: client.reply(PUBLIC, contexts[i], seed=i, max_chars=30),
                range(len(contexts)),
            )
        )
    assert together == alone  # each reply depends only on its own inputs and seed
    assert max(batch_sizes) > 1

"""The model server the operator tests' operator asks: TF Serving's ModelService on a socket.

In a cluster, a version the operator lists in the model ConfigMap answers once the mirror
has copied it and TF Serving has loaded it. Here the model files are placeholders (the
tests play the training Job), so nothing could load them: this server's models are the
ConfigMap's list itself, read from the API server on each call, and it answers
`GetModelStatus` over gRPC with TF Serving's messages (the client's TF-free copies, which
tests/serving checks byte for byte; TensorFlow would take minutes to import on a loaded
machine). A test can hold a chatbot back (a slow or broken load) or stop the server.
The real model server answers the operator in the cluster tier (tests/cluster).
"""

from __future__ import annotations

import threading
from concurrent import futures

import requests

from mimical.kube.manifests import serving_entries
from mimical.serving.client import AVAILABLE, MODEL_STATUS_METHOD, _protos


class ListedModels:
    """The models "loaded": what the served-model ConfigMap lists, minus the versions held.

    Each call reads the list afresh, as a model-server pod that just started would load
    it: a version the list no longer names answers no more.
    """

    def __init__(self, configmap_url: str):
        self.configmap_url = configmap_url
        # name → its versions that "are still loading" (or never load).
        self.held: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def hold(self, name: str, version: int) -> None:
        """`version` of `name` stops loading; the other listed versions answer meanwhile."""
        with self._lock:
            self.held.setdefault(name, set()).add(version)

    def release(self, name: str) -> None:
        with self._lock:
            self.held.pop(name, None)

    def available_version(self, name: str) -> int | None:
        """The newest listed version that loaded, as TF Serving's status reports it."""
        response = requests.get(self.configmap_url, timeout=10)
        data = response.json().get("data") if response.ok else None
        with self._lock:
            held = set(self.held.get(name, ()))
        loaded = [v for v in serving_entries(data).get(name, []) if v not in held]
        return max(loaded, default=None)


class ListedModelServer:
    """`ListedModels` behind TF Serving's `ModelService/GetModelStatus`, on 127.0.0.1."""

    def __init__(self, configmap_url: str):
        self.models = ListedModels(configmap_url)
        self.port = 0
        self._server = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def get_model_status(self, request, context):
        """As TF Serving: the version's state, or NOT_FOUND for a model it does not serve."""
        import grpc

        protos = _protos()
        version = self.models.available_version(request.model_spec.name)
        if version is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.model_spec.name} not found")
        status = protos.ModelVersionStatus(version=version, state=AVAILABLE)
        return protos.GetModelStatusResponse(model_version_status=[status])

    def start(self) -> ListedModelServer:
        import grpc

        protos = _protos()
        handler = grpc.unary_unary_rpc_method_handler(
            self.get_model_status,
            request_deserializer=protos.GetModelStatusRequest.FromString,
            response_serializer=protos.GetModelStatusResponse.SerializeToString,
        )
        service, method = MODEL_STATUS_METHOD.strip("/").split("/")
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service, {method: handler})]
        )
        # The same port again after a stop: the operator's client keeps its target.
        self.port = self._server.add_insecure_port(self.target)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0).wait()
            self._server = None

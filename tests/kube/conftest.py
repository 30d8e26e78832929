"""Fixtures for the operator tests: a mock API server, the real operator, S3 on moto.

Each test gets a fresh `ApiServer` (kmock) on 127.0.0.1 with the Chatbot CRD from the
chart and the serving ConfigMap the chart creates; `operator` runs the real kopf
operator in a thread against it; `kubectl` talks to it over HTTP like kubectl does;
`model_server` answers the operator's GetModelStatus for what the ConfigMap lists.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from mimical.config import Settings
from mimical.kube import API_VERSION, KIND
from mimical.kube.manifests import serving_config_data
from tests.kube.apiserver import ApiServerThread, load_crd
from tests.kube.model_server import ListedModelServer

NAMESPACE = "mimical-test"


class Kubectl:
    """The few kubectl verbs the tests need, as plain HTTP calls to the API server."""

    def __init__(self, url: str, namespace: str, storage_root: str = ""):
        self.url = url
        self.namespace = namespace
        self.storage_root = storage_root.rstrip("/")
        self.http = requests.Session()

    def source(self, chatbot: str, upload: str = "1/messenger.zip") -> str:
        """An upload of `chatbot`'s own (the operator trains on no other persona's objects)."""
        return f"{self.storage_root}/uploads/{chatbot}/{upload}"

    def _url(self, api, plural, name="", subresource=""):
        prefix = "api/v1" if api == "v1" else f"apis/{api}"
        tail = "/".join(p for p in (plural, name, subresource) if p)
        return f"{self.url}/{prefix}/namespaces/{self.namespace}/{tail}"

    def create(self, api: str, plural: str, body: dict) -> requests.Response:
        return self.http.post(self._url(api, plural), json=body, timeout=10)

    def get(self, api: str, plural: str, name: str) -> dict | None:
        response = self.http.get(self._url(api, plural, name), timeout=10)
        return response.json() if response.status_code == 200 else None

    def list(self, api: str, plural: str) -> list[dict]:
        return self.http.get(self._url(api, plural), timeout=10).json()["items"]

    def patch(self, api: str, plural: str, name: str, body: dict, subresource: str = ""):
        response = self.http.patch(
            self._url(api, plural, name, subresource),
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def delete(self, api: str, plural: str, name: str) -> requests.Response:
        return self.http.delete(self._url(api, plural, name), timeout=10)

    # Chatbots -----------------------------------------------------------------------

    def apply_chatbot(self, name: str, spec: dict) -> requests.Response:
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}
        return self.create(API_VERSION, "chatbots", body)

    def chatbot(self, name: str) -> dict | None:
        return self.get(API_VERSION, "chatbots", name)

    def jobs(self, chatbot: str | None = None) -> list[dict]:
        jobs = self.list("batch/v1", "jobs")
        return [
            j
            for j in jobs
            if chatbot is None or j["metadata"]["labels"].get("mimical.dev/chatbot") == chatbot
        ]

    def finish_job(self, name: str, succeeded: bool, reason: str = "", message: str = ""):
        """What the Job controller writes when the pod ends."""
        if succeeded:
            status = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        else:
            status = {
                "failed": 2,
                "conditions": [
                    {"type": "Failed", "status": "True", "reason": reason, "message": message}
                ],
            }
        return self.patch("batch/v1", "jobs", name, {"status": status}, subresource="status")


class OperatorThread:
    """The real operator (`run_operator`) in a thread; stop it to simulate a restart."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        from mimical.kube.operator import run_operator

        try:
            run_operator(
                self.settings,
                stop_flag=self.stop_flag,
                ready_flag=self.ready_flag,
                progress_interval=0.2,
            )
        except BaseException as error:
            self.error = error
            self.ready_flag.set()

    def __enter__(self) -> OperatorThread:
        self.thread.start()
        self.ready_flag.wait(30)
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_flag.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the operator did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def kube_api() -> Iterator[ApiServerThread]:
    with ApiServerThread([load_crd()]) as api:
        yield api


@pytest.fixture
def kubectl(kube_api, operator_settings) -> Kubectl:
    kubectl = Kubectl(kube_api.url, NAMESPACE, operator_settings.storage_url)
    # The chart creates the shared TF Serving ConfigMap and the chatbots' Secret; the
    # operator and the backend only edit them.
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": operator_settings.serving_configmap},
        "data": serving_config_data({}, operator_settings.storage_url),
    }
    kubectl.create("v1", "configmaps", body).raise_for_status()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": operator_settings.chatbot_secrets},
        "type": "Opaque",
    }
    kubectl.create("v1", "secrets", secret).raise_for_status()
    return kubectl


@pytest.fixture
def model_server(kube_api) -> Iterator[ListedModelServer]:
    configmap = Settings().serving_configmap
    url = f"{kube_api.url}/api/v1/namespaces/{NAMESPACE}/configmaps/{configmap}"
    server = ListedModelServer(url).start()
    yield server
    server.stop()


@pytest.fixture
def operator_settings(kube_api, model_server, s3_endpoint, s3_bucket, tmp_path) -> Settings:
    return Settings(
        home=tmp_path,
        namespace=NAMESPACE,
        kube_api_url=kube_api.url,
        storage_url=f"s3://{s3_bucket}/mimical",
        s3_endpoint_url=s3_endpoint,
        training_image="mimical-training:test",
        s3_secret="mimical-s3",
        serving_endpoint=model_server.target,
    )


@pytest.fixture
def storage(operator_settings):
    from mimical.storage import open_storage

    return open_storage(operator_settings.storage_url, operator_settings)


@pytest.fixture
def operator(operator_settings, kubectl) -> Iterator[OperatorThread]:
    with OperatorThread(operator_settings) as running:
        yield running

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

from mimical.config import Settings
from mimical.kube.manifests import serving_config_data
from mimical.testing.apiserver import ApiServerThread, load_crd
from mimical.testing.kubectl import NAMESPACE, Kubectl
from tests.kube.model_server import ListedModelServer


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
def job_event_failures(monkeypatch) -> list[Exception]:
    """What the operator's Job event handler raised (kopf retries it), in order: a signal
    of our own code that a test can wait for, not kopf's log text. Operators started after
    it register the wrapped handler (the `operator` fixture asks for it first)."""
    from mimical.kube import handlers

    failures: list[Exception] = []
    job_changed = handlers.job_changed

    def recording(*args, **kwargs):
        try:
            return job_changed(*args, **kwargs)
        except Exception as error:
            failures.append(error)
            raise

    monkeypatch.setattr(handlers, "job_changed", recording)
    return failures


@pytest.fixture
def operator(operator_settings, kubectl, job_event_failures) -> Iterator[OperatorThread]:
    with OperatorThread(operator_settings) as running:
        yield running

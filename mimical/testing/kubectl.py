"""The few kubectl verbs the operator tests and benchmark need, as plain HTTP calls to an
API server (the emulator of `mimical.testing.apiserver`, or a real control plane)."""

from __future__ import annotations

import requests

from mimical.kube import API_VERSION, KIND

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

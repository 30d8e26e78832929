"""The few Kubernetes API calls mimical makes, over the official `kubernetes` client.

kopf watches and patches the Chatbots it handles; everything else (training Jobs,
the shared TF Serving ConfigMap, a Chatbot's status from a Job's handler, the
backend creating Chatbots) goes through `Cluster`. Calls are synchronous: kopf runs
sync handlers in its thread pool, and the backend is a sync Flask app.

Connection: `Settings.kube_api_url` when set (development, tests), else the pod's
service account, else `~/.kube/config`.
"""

from __future__ import annotations

import json
import threading

from mimical.config import Settings
from mimical.errors import NotFoundError, UnavailableError
from mimical.kube import GROUP, PLURAL, VERSION
from mimical.kube.manifests import (
    COMMON_LABELS,
    LABEL_CHATBOT,
    InvalidSpecError,
    served_versions,
    serving_config_data,
    serving_entries,
)

MERGE_PATCH = "application/merge-patch+json"


def api_client(settings: Settings):
    """A `kubernetes.client.ApiClient` for the configured cluster."""
    from kubernetes import client, config

    if settings.kube_api_url:
        configuration = client.Configuration()
        configuration.host = settings.kube_api_url
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as error:
            raise UnavailableError(f"no Kubernetes cluster configured: {error}") from None
    return client.ApiClient()


def _api_message(error) -> str:
    """The `message` of a Kubernetes Status error body (or the raw body)."""
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(error.body or error.reason)


class Cluster:
    """Typed-enough access to the objects mimical owns in one namespace."""

    def __init__(self, settings: Settings, client=None):
        from kubernetes import client as k8s

        self.settings = settings
        self.namespace = settings.namespace
        self.api = client or api_client(settings)
        self.batch = k8s.BatchV1Api(self.api)
        self.core = k8s.CoreV1Api(self.api)
        self.custom = k8s.CustomObjectsApi(self.api)
        # The serving ConfigMap is read-modify-written; one writer at a time in this process
        # (re-entrant: a handler holds it across a version's entry and its status).
        self.serving_lock = threading.RLock()

    def _call(self, what: str, function, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return function(*args, **kwargs)
        except ApiException as error:
            if error.status == 404:
                raise NotFoundError(f"{what}: not found") from None
            raise
        except HTTPError as error:
            raise UnavailableError(f"{what}: Kubernetes API unreachable: {error}") from None

    # Chatbots -------------------------------------------------------------------------

    def get_chatbot(self, name: str) -> dict | None:
        try:
            return self._call(
                f"chatbot {name}",
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
            )
        except NotFoundError:
            return None

    def list_chatbots(self) -> list[dict]:
        listing = self._call(
            "chatbots",
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
        )
        return listing.get("items", [])

    def create_chatbot(self, body: dict) -> dict:
        return self._call(
            "chatbots",
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            body,
        )

    def patch_chatbot(self, name: str, body: dict) -> dict:
        return self._call(
            f"chatbot {name}",
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            body,
            _content_type=MERGE_PATCH,
        )

    def delete_chatbot(self, name: str) -> None:
        self._call(
            f"chatbot {name}",
            self.custom.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
        )

    def patch_chatbot_status(self, name: str, status: dict) -> dict:
        return self._call(
            f"chatbot {name}",
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {"status": status},
            _content_type=MERGE_PATCH,
        )

    # The chatbots' Secret (password hashes, owner-token digests) ------------------------

    def patch_secret_data(self, name: str, data: dict[str, str | None]) -> None:
        """Set (or, for None, remove) these keys of the Secret; the rest stays as it is.

        A merge patch of single keys: concurrent writers of different chatbots never
        overwrite each other, and no read of the whole Secret is needed first.
        """
        import base64

        encoded = {
            key: None if value is None else base64.b64encode(value.encode()).decode()
            for key, value in data.items()
        }
        self._call(
            f"Secret {name} (install the chart first)",
            self.core.patch_namespaced_secret,
            name,
            self.namespace,
            {"data": encoded},
            _content_type=MERGE_PATCH,
        )

    def read_secret(self, name: str) -> dict[str, str]:
        """The Secret's data, decoded; `NotFoundError` if it does not exist."""
        import base64

        secret = self._call(
            f"secret {name}", self.core.read_namespaced_secret, name, self.namespace
        )
        data = secret.data or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    # Training Jobs --------------------------------------------------------------------

    def create_job(self, manifest: dict) -> bool:
        """Create the Job; False if it already exists (names are deterministic).

        A Job the API server (or the client's model) refuses comes from the Chatbot's
        spec, e.g. a malformed resource quantity: `InvalidSpecError` with its reason.
        """
        import pydantic
        from kubernetes.client.exceptions import ApiException

        name = manifest["metadata"]["name"]
        try:
            self._call(
                f"job {name}",
                self.batch.create_namespaced_job,
                self.namespace,
                manifest,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status == 422:
                message = f"training Job {name} refused: {_api_message(error)}"
                raise InvalidSpecError(message) from None
            raise
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"][1:])
            raise InvalidSpecError(f"training Job {name}: {where}: {first['msg']}") from None
        return True

    def get_job(self, name: str) -> dict | None:
        try:
            job = self._call(f"job {name}", self.batch.read_namespaced_job, name, self.namespace)
        except NotFoundError:
            return None
        return self.api.sanitize_for_serialization(job)

    def delete_jobs(self, chatbot: str, keep: str | None = None) -> list[str]:
        """Delete the chatbot's training Jobs except `keep`; return the deleted names."""
        jobs = self._call(
            f"jobs of {chatbot}",
            self.batch.list_namespaced_job,
            self.namespace,
            label_selector=f"{LABEL_CHATBOT}={chatbot}",
        )
        deleted = []
        for job in jobs.items:
            if job.metadata.name == keep:
                continue
            try:
                self._call(
                    f"job {job.metadata.name}",
                    self.batch.delete_namespaced_job,
                    job.metadata.name,
                    self.namespace,
                    propagation_policy="Background",
                )
                deleted.append(job.metadata.name)
            except NotFoundError:
                pass
        return deleted

    def unfinished_pods(self, chatbot: str) -> list[str]:
        """Names of the chatbot's training pods that have not ended: they may still write
        to its storage (a pod of a deleted Job runs until its grace period is over)."""
        pods = self._call(
            f"pods of {chatbot}",
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=f"{LABEL_CHATBOT}={chatbot}",
        )
        ended = ("Succeeded", "Failed")
        return [
            pod.metadata.name
            for pod in pods.items
            if (pod.status and pod.status.phase) not in ended
        ]

    # The shared TF Serving model config -------------------------------------------------

    def set_serving_entry(self, chatbot: str, versions: list[int], storage_root: str) -> None:
        """Serve `chatbot` at exactly `versions` (none: stop serving it); idempotent."""

        def change(entries: dict[str, list[int]]) -> dict[str, list[int]]:
            entries = dict(entries)
            if versions:
                entries[chatbot] = sorted(int(version) for version in versions)
            else:
                entries.pop(chatbot, None)
            return entries

        with self.serving_lock:
            self._write_serving(change, storage_root)

    def rebuild_serving(self, storage_root: str) -> dict[str, list[int]] | None:
        """Make the ConfigMap list exactly what the Chatbots' status says is served.

        Heals whatever replaced its data (a `helm rollback`, a deleted ConfigMap, a
        rendered chart applied over it). Returns the entries written, None if unchanged.
        """
        with self.serving_lock:
            wanted = served_versions(self.list_chatbots())
            return self._write_serving(lambda _: wanted, storage_root)

    def _write_serving(self, change, storage_root: str):
        """Read the ConfigMap, apply `change` to its entries, write it back if different.

        A missing ConfigMap (deleted, or a chart that does not make it) is created.
        """
        name = self.settings.serving_configmap
        try:
            configmap = self._call(
                f"ConfigMap {name} (install the chart first)",
                self.core.read_namespaced_config_map,
                name,
                self.namespace,
            )
            current = configmap.data or {}
        except NotFoundError:
            entries = change({})
            metadata = {
                "name": name,
                "labels": {**COMMON_LABELS, "app.kubernetes.io/component": "tfserving"},
            }
            body = {"metadata": metadata, "data": serving_config_data(entries, storage_root)}
            self._call(
                f"ConfigMap {name}", self.core.create_namespaced_config_map, self.namespace, body
            )
            return entries
        entries = change(serving_entries(current))
        data = serving_config_data(entries, storage_root)
        if data == current:
            return None
        self._call(
            f"ConfigMap {name}",
            self.core.patch_namespaced_config_map,
            name,
            self.namespace,
            {"data": data},
            _content_type=MERGE_PATCH,
        )
        return entries

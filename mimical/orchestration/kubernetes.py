"""The Kubernetes orchestrator: chatbots are `Chatbot` resources, built by the operator.

With `MIMICAL_ORCHESTRATOR=kubernetes` the backend API keeps no database: its registry
is the Chatbot resources (`mimical.kube.registry`, from `open_registry(settings)`).

- `build` points `spec.source` at the uploaded export; the spec change makes the
  operator (`mimical.kube.handlers`) run a training Job (the build pipeline of
  `mimical.build`), and phase, progress, metrics and the served version are read back
  from the resource's status. The Job numbers the version (storage decides).
- deleting the resource runs the operator's finalizer, which stops training, stops
  serving and deletes the chatbot's objects in storage.

    registry = open_registry(settings)           # Settings(orchestrator="kubernetes", ...)
    orchestrator = open_orchestrator(settings, storage, registry)
"""

from __future__ import annotations

import logging

from mimical.chatbot import Phase
from mimical.config import Settings
from mimical.errors import ConflictError, InputError, NotFoundError
from mimical.kube.registry import KubernetesRegistry
from mimical.orchestration.base import Orchestrator
from mimical.registry import Registry
from mimical.storage import S3Storage, Storage

log = logging.getLogger(__name__)

# Reads and conditional patches tried when others keep writing to the chatbot.
BUILD_START_ATTEMPTS = 5


def _building(resource: dict) -> bool:
    """A build is queued (spec not yet seen by the operator) or its Job is running."""
    status = resource.get("status") or {}
    queued = resource["metadata"].get("generation") != status.get("observedGeneration")
    has_source = bool((resource.get("spec") or {}).get("source"))
    return has_source and (queued or status.get("phase") == Phase.TRAINING)


class KubernetesOrchestrator(Orchestrator):
    def __init__(self, settings: Settings, storage: Storage, registry: Registry, **options):
        """`options` (training options, deploy hook) belong to the operator's side here."""
        if not isinstance(storage, S3Storage):
            raise InputError(
                f"storage {storage.root!r}: the kubernetes orchestrator needs s3:// storage "
                "(training Jobs and TF Serving read it)"
            )
        if not isinstance(registry, KubernetesRegistry):
            raise InputError("the kubernetes orchestrator needs the Chatbot resources' registry")
        super().__init__(settings, storage, registry, **options)
        self.cluster = registry.cluster

    def build(self, name: str, upload_key: str, *, me: str | None = None) -> None:
        """Point `spec.source` at the upload, unless a build is already under way.

        The patch carries the resourceVersion the check saw, so two requests racing
        for the same chatbot cannot both start a build: the API server refuses the
        second with 409. A 409 may also come from a write that starts no build (the
        operator adding its finalizer or status to a chatbot just created), so the
        check runs again on a fresh read, a few times, before giving up.
        """
        from kubernetes.client.exceptions import ApiException

        spec: dict = {"source": self.storage.url(upload_key)}
        if me:
            spec["me"] = me
        for _attempt in range(BUILD_START_ATTEMPTS):
            resource = self.cluster.get_chatbot(name)
            if resource is None or resource["metadata"].get("deletionTimestamp"):
                raise NotFoundError(f"no chatbot named {name!r}")
            if _building(resource):
                raise ConflictError(f"{name!r} is already being built; wait for it to finish")
            patch = {"metadata": {"resourceVersion": resource["metadata"]["resourceVersion"]}}
            try:
                self.cluster.patch_chatbot(name, {**patch, "spec": spec})
            except ApiException as error:
                if error.status != 409:
                    raise
                continue  # changed since the read: look again
            log.info("chatbot %s: build requested from %s", name, spec["source"])
            return
        raise ConflictError(f"{name!r} keeps changing while starting its build; try again")

    def busy(self, name: str) -> bool:
        resource = self.cluster.get_chatbot(name)
        return resource is not None and _building(resource)

    def delete(self, name: str) -> None:
        """Nothing to do up front: deleting the resource (`registry.delete`) cleans up."""

    def close(self) -> None:
        """The cluster connection is the registry's; it closes it."""

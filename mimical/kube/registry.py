"""The chatbot registry in Kubernetes mode: `Chatbot` resources plus one shared Secret.

With `MIMICAL_ORCHESTRATOR=kubernetes` the backend and the webhook keep no database:
`open_registry(settings)` returns this registry over the Chatbot resources of
`MIMICAL_NAMESPACE`. Each password's argon2id hash and owner token's digest are keys
`NAME.passwordHash` / `NAME.ownerTokenHash` of the one Secret the chart creates
(`Settings.chatbot_secrets`): RBAC can name that Secret (`resourceNames`), so the
internet-facing webhook reads it and no other, and the backend can neither read nor
change any Secret it did not make. Deleting a chatbot removes its keys (the operator's
finalizer does it too, for Chatbots deleted with kubectl). Phase, progress, metrics and
the served version are read from the resource's status, which only the operator
(`mimical.kube.handlers`) writes.
"""

from __future__ import annotations

import contextlib
import datetime

from mimical.chatbot import STEP_PHASES, Chatbot, Phase, access_stamp
from mimical.config import Settings
from mimical.errors import ConflictError, NotFoundError, UnavailableError
from mimical.kube import API_VERSION, KIND
from mimical.kube.cluster import Cluster
from mimical.kube.manifests import PASSWORD_KEY, chatbot_labels, secret_keys
from mimical.registry import Registry

# Set to a fresh random value on every password change: part of `Chatbot.access_stamp`
# (an annotation, not spec: changing it starts no build).
PASSWORD_GENERATION = "mimical.dev/password-generation"


def _epoch(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def chatbot_from_resource(resource: dict) -> Chatbot:
    """The API's view of a Chatbot resource."""
    meta, spec = resource["metadata"], resource.get("spec") or {}
    status = resource.get("status") or {}
    progress = status.get("progress") or {}
    phase = Phase(status.get("phase") or Phase.PENDING)
    message = progress.get("message", "")
    if meta.get("generation", 1) != status.get("observedGeneration", 0):
        phase, message = Phase.PENDING, "queued"  # the operator has not seen this spec yet
    elif phase == Phase.TRAINING:
        phase = STEP_PHASES.get(progress.get("step"), Phase.TRAINING)
    # The version that answers: a trained one that is still loading (or never loaded) is
    # not one a chat can reach.
    version = status.get("servedVersion")
    return Chatbot(
        name=meta["name"],
        display_name=spec.get("displayName") or meta["name"],
        public=bool(spec.get("public")),
        has_password=bool(spec.get("passwordSecretRef")),
        phase=phase,
        progress=(progress.get("percent") or 0) / 100,
        message=message,
        model_version=version,
        versions=[version] if version else [],
        metrics=dict(status.get("metrics") or {}),
        me=spec.get("me"),
        created_at=_epoch(meta.get("creationTimestamp")),
        updated_at=_epoch(progress.get("updated") or meta.get("creationTimestamp")),
        access_stamp=access_stamp(
            meta.get("uid", ""), (meta.get("annotations") or {}).get(PASSWORD_GENERATION, "")
        ),
    )


class KubernetesRegistry(Registry):
    """Chatbot resources as the registry; their secrets as keys of one shared Secret."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.secret = cluster.settings.chatbot_secrets

    @classmethod
    def connect(cls, settings: Settings) -> KubernetesRegistry:
        return cls(Cluster(settings))

    def close(self) -> None:
        self.cluster.api.close()

    def insert(self, chatbot: Chatbot, password_hash: str | None, owner_token_hash: str) -> None:
        from kubernetes.client.exceptions import ApiException

        password_key, owner_key = secret_keys(chatbot.name)
        spec: dict = {"displayName": chatbot.display_name, "public": chatbot.public}
        if chatbot.me:
            spec["me"] = chatbot.me
        if password_hash:
            spec["passwordSecretRef"] = {"name": self.secret, "key": password_key}
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": chatbot.name, "labels": chatbot_labels(chatbot.name, "chatbot")},
            "spec": spec,
        }
        try:
            self.cluster.create_chatbot(body)
        except ApiException as error:
            if error.status == 409:
                raise ConflictError(f"a chatbot named {chatbot.name!r} already exists") from None
            raise
        # Both keys are written, so nothing of an earlier chatbot of this name survives.
        self.cluster.patch_secret_data(
            self.secret, {owner_key: owner_token_hash, password_key: password_hash or None}
        )

    def write_password(self, name: str, password_hash: str) -> None:
        """The shared Secret's hash first, then the annotation that ends sessions opened
        before."""
        import secrets

        if self.find(name) is None:
            raise NotFoundError(f"no chatbot named {name!r}")
        password_key, _ = secret_keys(name)
        self.cluster.patch_secret_data(self.secret, {password_key: password_hash})
        annotations = {PASSWORD_GENERATION: secrets.token_hex(8)}
        self.cluster.patch_chatbot(name, {"metadata": {"annotations": annotations}})

    def find(self, name: str) -> Chatbot | None:
        resource = self.cluster.get_chatbot(name)
        if resource is None or resource["metadata"].get("deletionTimestamp"):
            return None
        return chatbot_from_resource(resource)

    def list_all(self) -> list[Chatbot]:
        resources = [
            r for r in self.cluster.list_chatbots() if not r["metadata"].get("deletionTimestamp")
        ]
        return sorted((chatbot_from_resource(r) for r in resources), key=lambda c: c.name)

    def list_public(self) -> list[Chatbot]:
        return [chatbot for chatbot in self.list_all() if chatbot.public]

    def secrets(self, name: str) -> tuple[str | None, str]:
        resource = self.cluster.get_chatbot(name)
        if resource is None or resource["metadata"].get("deletionTimestamp"):
            raise NotFoundError(f"no chatbot named {name!r}")
        password_key, owner_key = secret_keys(name)
        ref = (resource.get("spec") or {}).get("passwordSecretRef")
        if ref and ref.get("name") != self.secret:
            # Fail closed: this persona's hash is where no mimical component may read.
            raise UnavailableError(
                f"chatbot {name!r}: spec.passwordSecretRef must name Secret {self.secret} "
                f"(key {password_key}); the services may read no other Secret"
            )
        try:
            data = self.cluster.read_secret(self.secret)
        except NotFoundError:
            data = {}
        password_hash = data.get(ref.get("key") or PASSWORD_KEY) if ref else None
        if ref and not password_hash:
            # Fail closed: a protected persona whose hash is missing opens for nobody.
            raise UnavailableError(f"chatbot {name!r}: Secret {self.secret} has no hash")
        return password_hash, data.get(owner_key, "")

    def write_status(self, name: str, changes: dict, add_version: int | None) -> Chatbot:
        """Refused: the operator alone writes a Chatbot's status; change its spec instead."""
        raise NotImplementedError(
            f"chatbot {name!r}: the Kubernetes registry cannot set {', '.join(changes)}; "
            "the operator writes status (build() changes spec.source to start a build)"
        )

    def delete(self, name: str) -> None:
        """Delete the resource and its keys; the operator's finalizer removes the rest."""
        self.cluster.delete_chatbot(name)
        with contextlib.suppress(NotFoundError):
            self.cluster.patch_secret_data(self.secret, dict.fromkeys(secret_keys(name)))

"""The chatbot registry in Kubernetes mode: `Chatbot` resources plus one Secret each.

With `MIMICAL_ORCHESTRATOR=kubernetes` the backend and the webhook keep no database:
`open_registry(settings)` returns this registry over the Chatbot resources of
`MIMICAL_NAMESPACE`. The password's argon2id hash and the owner token's digest live
in a Secret per chatbot (`NAME-secrets`, owned by the Chatbot so it goes with it).
Phase, progress, metrics and the served version are read from the resource's status,
which only the operator (`mimical.kube.handlers`) writes.
"""

from __future__ import annotations

import base64
import datetime

from mimical.build import BUILD_PHASES, step_name
from mimical.config import Settings
from mimical.errors import ConflictError, NotFoundError, UnavailableError
from mimical.kube import API_VERSION, KIND
from mimical.kube.cluster import Cluster
from mimical.kube.manifests import chatbot_labels
from mimical.registry import Chatbot, Phase, Registry, access_stamp

PASSWORD_KEY = "passwordHash"
# Set to a fresh random value on every password change: part of `Chatbot.access_stamp`
# (an annotation, not spec: changing it starts no build).
PASSWORD_GENERATION = "mimical.dev/password-generation"
OWNER_TOKEN_KEY = "ownerTokenHash"
# status.progress.step of a Training chatbot → the API's finer phase. The Job writes the
# build pipeline's phase names (`mimical.build.step_name`); "scheduled" is the operator's.
STEP_PHASES = {"scheduled": Phase.IMPORTING} | {step_name(p): p for p in BUILD_PHASES}


def secret_name(chatbot: str) -> str:
    return f"{chatbot}-secrets"


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
    elif phase == Phase.FAILED:
        trained = [c for c in status.get("conditions", []) if c["type"] == "Trained"]
        message = trained[0].get("message", message) if trained else message
    version = status.get("modelVersion")
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
    """Chatbot resources as the registry; secrets in one Secret per chatbot."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    @classmethod
    def connect(cls, settings: Settings) -> KubernetesRegistry:
        return cls(Cluster(settings))

    def close(self) -> None:
        self.cluster.api.close()

    def insert(self, chatbot: Chatbot, password_hash: str | None, owner_token_hash: str) -> None:
        from kubernetes.client.exceptions import ApiException

        spec: dict = {"displayName": chatbot.display_name, "public": chatbot.public}
        if chatbot.me:
            spec["me"] = chatbot.me
        if password_hash:
            spec["passwordSecretRef"] = {"name": secret_name(chatbot.name), "key": PASSWORD_KEY}
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": chatbot.name, "labels": chatbot_labels(chatbot.name, "chatbot")},
            "spec": spec,
        }
        try:
            created = self.cluster.create_chatbot(body)
        except ApiException as error:
            if error.status == 409:
                raise ConflictError(f"a chatbot named {chatbot.name!r} already exists") from None
            raise
        data = {OWNER_TOKEN_KEY: owner_token_hash}
        if password_hash:
            data[PASSWORD_KEY] = password_hash
        owner = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": chatbot.name,
            "uid": created["metadata"]["uid"],
        }
        self.cluster.apply_secret(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": secret_name(chatbot.name),
                    "labels": chatbot_labels(chatbot.name, "chatbot"),
                    "ownerReferences": [owner],
                },
                "type": "Opaque",
                "data": {
                    key: base64.b64encode(value.encode()).decode() for key, value in data.items()
                },
            }
        )

    def write_password(self, name: str, password_hash: str) -> None:
        """The Secret's hash first, then the annotation that ends sessions opened before."""
        import secrets

        if self.find(name) is None:
            raise NotFoundError(f"no chatbot named {name!r}")
        encoded = base64.b64encode(password_hash.encode()).decode()
        self.cluster.apply_secret(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name(name)},
                "data": {PASSWORD_KEY: encoded},
            }
        )
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
        chatbot = self.find(name)
        if chatbot is None:
            raise NotFoundError(f"no chatbot named {name!r}")
        try:
            data = self.cluster.read_secret(secret_name(name))
        except NotFoundError:
            data = {}
        password_hash = data.get(PASSWORD_KEY)
        if chatbot.has_password and not password_hash:
            # Fail closed: a protected persona whose hash is missing opens for nobody.
            raise UnavailableError(f"chatbot {name!r}: Secret {secret_name(name)} has no hash")
        return password_hash, data.get(OWNER_TOKEN_KEY, "")

    def write_status(self, name: str, changes: dict, add_version: int | None) -> Chatbot:
        """Refused: the operator alone writes a Chatbot's status; change its spec instead."""
        raise NotImplementedError(
            f"chatbot {name!r}: the Kubernetes registry cannot set {', '.join(changes)}; "
            "the operator writes status (build() changes spec.source to start a build)"
        )

    def delete(self, name: str) -> None:
        """Delete the resource; the operator's finalizer removes what it built and stored."""
        self.cluster.delete_chatbot(name)
        self.cluster.delete_secret(secret_name(name))

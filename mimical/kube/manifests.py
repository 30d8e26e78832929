"""Pure builders: a Chatbot's spec in, the Kubernetes objects the operator creates out.

Nothing here talks to a cluster, so every manifest is unit-testable and validated
against the Kubernetes OpenAPI schema in `tests/kube`. The handlers (`handlers.py`)
only call these, adopt the result (`kopf.adopt`) and record what happened in status.

Try one: `python -m mimical.kube.manifests alice s3://bucket/exports/alice.zip`.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field

import yaml

from mimical.chatbot import NAME_MAX_LENGTH, NAME_PATTERN
from mimical.config import DEFAULT_TRAINING_MINUTES, Settings
from mimical.errors import InputError
from mimical.kube import GROUP
from mimical.kube.status import serving_versions
from mimical.storage import corpus_prefix, model_prefix, object_location, upload_prefix

LABEL_CHATBOT = f"{GROUP}/chatbot"
LABEL_GENERATION = f"{GROUP}/generation"
COMMON_LABELS = {
    "app.kubernetes.io/name": "mimical",
    "app.kubernetes.io/managed-by": "mimical-operator",
}

# One retry of a crashed pod; a failing import or a bad export fails the same way twice.
JOB_BACKOFF_LIMIT = 1
# Finished Jobs (and their pods' logs) stay a day for `kubectl logs`, then go.
JOB_TTL_SECONDS = 24 * 3600
# activeDeadlineSeconds = training budget + time to fetch, import and upload.
JOB_DEADLINE_SLACK_SECONDS = 15 * 60
# The training pod's user: the image must not need root.
TRAINING_UID = 10001
DEFAULT_TRAINING_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"memory": "4Gi"},
}

# A chatbot's keys in the shared Secret `Settings.chatbot_secrets` (see `secret_keys`).
PASSWORD_KEY = "passwordHash"
OWNER_TOKEN_KEY = "ownerTokenHash"

MODEL_CONFIG_KEY = "models.config"  # TF Serving's --model_config_file (text proto)
MODEL_ENTRIES_KEY = "models.json"  # the same entries as JSON, what the operator reads back


class InvalidSpecError(InputError):
    """The Chatbot passed the CRD schema but cannot be built (the status says why)."""


@dataclass(frozen=True)
class TrainingSpec:
    """`spec.training` with the CRD's defaults applied (the API server applies them too)."""

    max_minutes: float = DEFAULT_TRAINING_MINUTES  # the CRD's default too (tests/kube)
    epochs: int | None = None
    gpu: int = 0
    image: str = ""
    resources: dict = field(default_factory=dict)
    node_selector: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=list)

    @classmethod
    def from_spec(cls, spec: dict) -> TrainingSpec:
        training = spec.get("training") or {}
        return cls(
            max_minutes=float(training.get("maxMinutes") or DEFAULT_TRAINING_MINUTES),
            epochs=training.get("epochs"),
            gpu=int(training.get("gpu") or 0),
            image=training.get("image") or "",
            resources=dict(training.get("resources") or {}),
            node_selector=dict(training.get("nodeSelector") or {}),
            tolerations=list(training.get("tolerations") or []),
        )


def check_chatbot(name: str, spec: dict, settings: Settings) -> None:
    """Refuse what the CRD schema cannot express; `InvalidSpecError` names the problem.

    Whoever may edit a Chatbot must not get more than their own persona: its training
    Job runs with the training identity (S3 access to every persona), so the source
    must be one of the chatbot's own objects and the image one the cluster admin allowed.
    """
    if not NAME_PATTERN.match(name):
        raise InvalidSpecError(
            f"chatbot name {name!r}: use at most {NAME_MAX_LENGTH} lowercase letters, digits "
            "and '-' (it names the training Job and the served model)"
        )
    source = spec.get("source")
    if source is not None:
        try:
            object_location(source)
        except InputError:
            raise InvalidSpecError(
                f"spec.source {source!r}: expected s3://BUCKET/KEY of an export"
            ) from None
        owned = own_source_prefixes(name, settings)
        if not source.startswith(tuple(owned)):
            raise InvalidSpecError(
                f"spec.source {source!r}: a chatbot trains only on its own objects, "
                f"under {' or '.join(owned)}"
            )
    image = (spec.get("training") or {}).get("image")
    if image and image not in allowed_training_images(settings):
        raise InvalidSpecError(
            f"spec.training.image {image!r} is not allowed: ask the cluster admin to add it "
            "to the chart's training.allowedImages"
        )


def own_source_prefixes(name: str, settings: Settings) -> list[str]:
    """The URLs a chatbot's `spec.source` may start with: its uploads and its corpora."""
    root = settings.storage_root.rstrip("/")
    return [f"{root}/{upload_prefix(name)}", f"{root}/{corpus_prefix(name)}"]


def disposable_upload(name: str, source: str, settings: Settings) -> bool:
    """Whether `source` is one of the chatbot's raw uploads, deleted once its build is over.

    Raw exports hold whole conversations; like local mode (`Settings.keep_uploads`), they
    do not outlive their import. A corpus the admin placed under corpora/NAME/ stays.
    """
    own_uploads = own_source_prefixes(name, settings)[0]
    return not settings.keep_uploads and source.startswith(own_uploads)


def allowed_training_images(settings: Settings) -> set[str]:
    return {settings.training_image, *_json_setting(settings, "training_allowed_images", [])}


def training_job_name(name: str, generation: int) -> str:
    """Deterministic per generation, so a restarted operator finds the Job it made."""
    return f"{name}-train-{generation}"


def secret_keys(name: str) -> tuple[str, str]:
    """(password hash key, owner-token digest key) of chatbot `name` in the shared Secret."""
    return f"{name}.{PASSWORD_KEY}", f"{name}.{OWNER_TOKEN_KEY}"


def chatbot_labels(name: str, component: str) -> dict[str, str]:
    return {**COMMON_LABELS, "app.kubernetes.io/component": component, LABEL_CHATBOT: name}


def _json_setting(settings: Settings, field_name: str, default):
    """A JSON-valued setting (the chart passes resources, selectors, tolerations as JSON)."""
    raw = getattr(settings, field_name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise InputError(f"MIMICAL_{field_name.upper()}: not valid JSON: {raw!r}") from None


def _training_resources(training: TrainingSpec, settings: Settings) -> dict:
    defaults = _json_setting(settings, "training_resources", DEFAULT_TRAINING_RESOURCES)
    requests = {**defaults.get("requests", {}), **training.resources.get("requests", {})}
    limits = {**defaults.get("limits", {}), **training.resources.get("limits", {})}
    if training.gpu > 0:
        limits[settings.training_gpu_resource] = training.gpu
    # Quantities are strings in the API ("2", "500m", "4Gi"); the CRD also accepts integers.
    return {
        "requests": {key: str(value) for key, value in requests.items()},
        "limits": {key: str(value) for key, value in limits.items()},
    }


def _training_env(name: str, job_name: str, spec: dict, training: TrainingSpec, settings: Settings):
    plain = {
        "MIMICAL_CHATBOT": name,
        "MIMICAL_SOURCE": spec["source"],
        "MIMICAL_ME": spec.get("me") or "",
        "MIMICAL_TRAINING_JOB": job_name,
        "MIMICAL_TRAINING_MAX_MINUTES": f"{training.max_minutes:g}",
        "MIMICAL_TRAINING_EPOCHS": str(training.epochs or ""),
        "MIMICAL_STORAGE_URL": settings.storage_url,
        "MIMICAL_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "AWS_REGION": settings.s3_region,
        "MIMICAL_KEEP_UPLOADS": "true" if settings.keep_uploads else "",
        "MIMICAL_HOME": "/tmp/mimical",
        "HOME": "/tmp",
    }
    env = [{"name": key, "value": value} for key, value in plain.items() if value]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if settings.s3_secret else ():
        env.append(
            {"name": key, "valueFrom": {"secretKeyRef": {"name": settings.s3_secret, "key": key}}}
        )
    return env


def image_pull_secrets(settings: Settings) -> list[dict[str, str]]:
    """The pod's `imagePullSecrets` from the chart's list (names or `{name: ...}` entries)."""
    entries = _json_setting(settings, "image_pull_secrets", [])
    return [{"name": e["name"] if isinstance(e, dict) else str(e)} for e in entries]


def training_job(name: str, generation: int, spec: dict, settings: Settings) -> dict:
    """The batch/v1 Job that imports the export, trains, and uploads the versioned model.

    The caller adopts it (owner reference → garbage-collected with the Chatbot).
    """
    training = TrainingSpec.from_spec(spec)
    job_name = training_job_name(name, generation)
    labels = {**chatbot_labels(name, "training"), LABEL_GENERATION: str(generation)}
    tolerations = list(training.tolerations)
    node_selector = dict(training.node_selector)
    if training.gpu > 0:
        # GPU node pools are usually tainted so only GPU work lands there.
        gpu_taint = {
            "key": settings.training_gpu_resource,
            "operator": "Exists",
            "effect": "NoSchedule",
        }
        tolerations += _json_setting(settings, "training_gpu_tolerations", [gpu_taint])
        node_selector = {
            **_json_setting(settings, "training_gpu_node_selector", {}),
            **node_selector,
        }
    pod_spec = {
        "restartPolicy": "Never",
        # The pod never calls the Kubernetes API: no API token. (Its cloud identity still
        # works: EKS injects its own web-identity token, GKE answers from the metadata server.)
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINING_UID,
            "runAsGroup": TRAINING_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "train",
                "image": training.image or settings.training_image,
                "env": _training_env(name, job_name, spec, training, settings),
                "resources": _training_resources(training, settings),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    # The identity S3 trusts (IRSA role, GKE workload identity) hangs on the ServiceAccount.
    if settings.training_service_account:
        pod_spec["serviceAccountName"] = settings.training_service_account
    if settings.training_image_pull_policy:
        pod_spec["containers"][0]["imagePullPolicy"] = settings.training_image_pull_policy
    if pull_secrets := image_pull_secrets(settings):
        pod_spec["imagePullSecrets"] = pull_secrets
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name, "labels": labels},
        "spec": {
            "backoffLimit": JOB_BACKOFF_LIMIT,
            "activeDeadlineSeconds": math.ceil(training.max_minutes * 60)
            + JOB_DEADLINE_SLACK_SECONDS,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def model_base_path(storage_root: str, name: str) -> str:
    """TF Serving's base path for one chatbot: versions are its numbered sub-directories."""
    return f"{storage_root.rstrip('/')}/{model_prefix(name).rstrip('/')}"


def model_config_text(entries: dict[str, list[int]], storage_root: str) -> str:
    """TF Serving's model config file: one entry per served chatbot, pinned to its versions.

    Pinning (`specific`) means a version goes live only once the operator saw its Job
    succeed (never a half-uploaded one). A chatbot whose new version loads lists both: the
    one that answers stays loaded until the new one is AVAILABLE, and a model-server pod
    that starts meanwhile loads the one that answers too.
    """
    lines = ["model_config_list {"]
    for name, versions in sorted(entries.items()):
        pinned = " ".join(f"versions: {int(version)}" for version in sorted(versions))
        lines += [
            "  config {",
            f'    name: "{name}"',
            f'    base_path: "{model_base_path(storage_root, name)}"',
            '    model_platform: "tensorflow"',
            f"    model_version_policy {{ specific {{ {pinned} }} }}",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def serving_config_data(entries: dict[str, list[int]], storage_root: str) -> dict[str, str]:
    """The `data` of the shared TF Serving ConfigMap for these name → versions entries."""
    return {
        MODEL_CONFIG_KEY: model_config_text(entries, storage_root),
        MODEL_ENTRIES_KEY: json.dumps(entries, sort_keys=True),
    }


def served_versions(chatbots: list[dict]) -> dict[str, list[int]]:
    """name → versions each Chatbot's status says the model server must hold
    (`status.serving_versions`): the one source of truth the model ConfigMap is rebuilt
    from (a chatbot being deleted is served no more)."""
    wanted = {
        chatbot["metadata"]["name"]: serving_versions(chatbot.get("status") or {})
        for chatbot in chatbots
        if not chatbot["metadata"].get("deletionTimestamp")
    }
    return {name: versions for name, versions in wanted.items() if versions}


def serving_entries(configmap_data: dict | None) -> dict[str, list[int]]:
    """Read back the entries the operator wrote (an empty or foreign ConfigMap has none).

    A lone number is one version: what the previous release wrote, read during an upgrade
    until the operator rewrites the list.
    """
    raw = (configmap_data or {}).get(MODEL_ENTRIES_KEY) or "{}"
    entries = {}
    try:
        for name, versions in json.loads(raw).items():
            listed = versions if isinstance(versions, list) else [versions]
            if listed:
                entries[str(name)] = sorted(int(version) for version in listed)
    except (ValueError, TypeError, AttributeError):
        return {}
    return entries


if __name__ == "__main__":
    chatbot, source = sys.argv[1], sys.argv[2]
    settings = Settings.from_env()
    check_chatbot(chatbot, {"source": source}, settings)
    yaml.safe_dump(training_job(chatbot, 1, {"source": source}, settings), sys.stdout)

"""The pure builders: training Job, serving config, RBAC, CRD and examples — no cluster."""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mimical.config import DEFAULT_TRAINING_MINUTES, Settings
from mimical.kube import API_VERSION, KIND
from mimical.kube.manifests import (
    JOB_DEADLINE_SLACK_SECONDS,
    MODEL_CONFIG_KEY,
    InvalidSpecError,
    check_chatbot,
    disposable_upload,
    serving_config_data,
    serving_entries,
    training_job,
    training_job_name,
)
from mimical.kube.status import merge_conditions
from mimical.testing.apiserver import load_crd

ROOT = Path(__file__).parents[2]
K8S_VERSION = "1.30"
SETTINGS = Settings(storage_url="s3://models-bucket/mimical", s3_secret="s3-creds")
GPU_RESOURCE = "nvidia.com/gpu"
SOURCE = "s3://models-bucket/mimical/uploads/alice/1/export.zip"


def crd_schema() -> dict:
    return load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    "training",
    [
        {},
        {"gpu": 2, "maxMinutes": 90, "epochs": 5, "image": "registry.example/train:2"},
        {
            "gpu": 1,
            "resources": {"requests": {"cpu": 4, "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
            "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
            ],
        },
    ],
)
def test_training_job_is_a_valid_kubernetes_job(training):
    job = training_job("alice", 3, {"source": SOURCE, "training": training}, SETTINGS)
    assert kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    assert job["metadata"]["name"] == training_job_name("alice", 3) == "alice-train-3"


def test_gpu_count_becomes_the_nvidia_limit_and_zero_means_cpu():
    gpu_job = training_job("alice", 1, {"source": SOURCE, "training": {"gpu": 2}}, SETTINGS)
    assert container(gpu_job)["resources"]["limits"][GPU_RESOURCE] == "2"
    tolerations = gpu_job["spec"]["template"]["spec"]["tolerations"]
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in tolerations

    cpu_job = training_job("alice", 1, {"source": SOURCE, "training": {"gpu": 0}}, SETTINGS)
    assert GPU_RESOURCE not in container(cpu_job)["resources"]["limits"]
    assert "tolerations" not in cpu_job["spec"]["template"]["spec"]


def test_training_job_reads_s3_credentials_from_the_secret_and_has_limits():
    job = training_job("alice", 1, {"source": SOURCE, "training": {"maxMinutes": 10}}, SETTINGS)
    env = {e["name"]: e for e in container(job)["env"]}
    assert env["MIMICAL_SOURCE"]["value"] == SOURCE
    assert env["MIMICAL_STORAGE_URL"]["value"] == SETTINGS.storage_url
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": key}
    spec = job["spec"]
    assert spec["backoffLimit"] >= 0 and spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 10 * 60


def test_the_crds_training_default_is_the_one_in_config():
    """One training budget: the CRD's `maxMinutes` default (minutes, as the CRD spells it)
    is `mimical.config.DEFAULT_TRAINING_MINUTES`, and so is the Job of a spec without one."""
    training = crd_schema()["properties"]["spec"]["properties"]["training"]["properties"]
    assert training["maxMinutes"]["default"] == DEFAULT_TRAINING_MINUTES
    jsonschema.Draft7Validator(crd_schema()).validate(
        {"spec": {"source": SOURCE, "training": {"maxMinutes": DEFAULT_TRAINING_MINUTES}}}
    )
    job = training_job("alice", 1, {"source": SOURCE}, SETTINGS)
    env = {e["name"]: e.get("value") for e in container(job)["env"]}
    assert float(env["MIMICAL_TRAINING_MAX_MINUTES"]) == DEFAULT_TRAINING_MINUTES
    deadline = math.ceil(DEFAULT_TRAINING_MINUTES * 60) + JOB_DEADLINE_SLACK_SECONDS
    assert job["spec"]["activeDeadlineSeconds"] == deadline


def test_without_an_s3_secret_jobs_use_the_clusters_credentials():
    settings = SETTINGS.with_overrides(s3_secret="")
    job = training_job("alice", 1, {"source": SOURCE}, settings)
    names = {e["name"] for e in container(job)["env"]}
    assert "MIMICAL_SOURCE" in names and "AWS_SECRET_ACCESS_KEY" not in names


def test_names_the_schema_cannot_check_are_refused_with_a_reason():
    check_chatbot("alice", {"source": SOURCE}, SETTINGS)
    with pytest.raises(InvalidSpecError, match="at most 40"):
        check_chatbot("a" * 41, {"source": SOURCE}, SETTINGS)


@pytest.mark.parametrize(
    "source",
    [
        "s3://models-bucket/mimical/uploads/bob/1/export.zip",  # another persona's upload
        "s3://models-bucket/mimical/corpora/bob/3.jsonl",  # ...or corpus
        "s3://models-bucket/mimical/uploads/alice-2/1/export.zip",  # a name that extends ours
        "s3://other-bucket/mimical/uploads/alice/1/export.zip",
        "s3://models-bucket/uploads/alice/1/export.zip",  # outside the storage root
    ],
)
def test_a_source_outside_the_chatbots_own_objects_is_refused(source):
    with pytest.raises(InvalidSpecError, match="its own objects"):
        check_chatbot("alice", {"source": source}, SETTINGS)


def test_own_uploads_and_corpora_are_accepted_and_only_uploads_are_disposable():
    corpus = "s3://models-bucket/mimical/corpora/alice/1732521600.jsonl"
    for source in (SOURCE, corpus):
        check_chatbot("alice", {"source": source}, SETTINGS)
    assert disposable_upload("alice", SOURCE, SETTINGS)
    assert not disposable_upload("alice", corpus, SETTINGS)
    assert not disposable_upload("alice", SOURCE, SETTINGS.with_overrides(keep_uploads=True))


def test_training_images_outside_the_allow_list_are_refused():
    allowed = SETTINGS.with_overrides(training_allowed_images='["registry.example/train:gpu"]')
    for image in (SETTINGS.training_image, "registry.example/train:gpu"):
        check_chatbot("alice", {"source": SOURCE, "training": {"image": image}}, allowed)
    with pytest.raises(InvalidSpecError, match="training.allowedImages"):
        check_chatbot("alice", {"source": SOURCE, "training": {"image": "evil/x:1"}}, allowed)
    with pytest.raises(InvalidSpecError, match="not allowed"):
        spec = {"source": SOURCE, "training": {"image": "registry.example/train:gpu"}}
        check_chatbot("alice", spec, SETTINGS)


def test_training_pods_run_as_the_training_account_with_pull_settings():
    settings = SETTINGS.with_overrides(
        training_service_account="mimical-training",
        training_image_pull_policy="Always",
        image_pull_secrets='[{"name": "regcred"}, "mirror"]',
    )
    job = training_job("alice", 1, {"source": SOURCE}, settings)
    assert kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mimical-training"
    assert pod["automountServiceAccountToken"] is False
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    assert container(job)["imagePullPolicy"] == "Always"
    # Unset: the namespace's default account and the cluster's default policy.
    plain = training_job("alice", 1, {"source": SOURCE}, SETTINGS)["spec"]["template"]["spec"]
    assert "serviceAccountName" not in plain and "imagePullSecrets" not in plain
    assert "imagePullPolicy" not in plain["containers"][0]


def test_serving_config_pins_each_chatbot_to_its_versions():
    data = serving_config_data({"bob": [7], "alice": [12, 13]}, "s3://models-bucket/mimical")
    text = data[MODEL_CONFIG_KEY]
    assert text.index('name: "alice"') < text.index('name: "bob"')
    assert 'base_path: "s3://models-bucket/mimical/models/alice"' in text
    assert "specific { versions: 12 versions: 13 }" in text
    assert "specific { versions: 7 }" in text
    assert serving_entries(data) == {"alice": [12, 13], "bob": [7]}
    assert serving_entries(None) == {}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": data}
    assert kubernetes_validate.validate(configmap, K8S_VERSION, strict=True)


def test_the_served_list_keeps_the_answering_version_until_the_new_one_answers():
    """The model server's list comes from what answers (`servedVersion`), not from the
    newest trained version: a restarted model-server pod must load a version that works."""
    from mimical.kube.manifests import served_versions

    def chatbot(name: str, status: dict, deleting: bool = False) -> dict:
        meta = {"name": name, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
        return {"metadata": meta, "status": status}

    loading = {"step": "loading", "updated": "2026-01-01T00:00:00Z"}
    chatbots = [
        chatbot("ready", {"phase": "Ready", "modelVersion": 3, "servedVersion": 3}),
        chatbot(
            "retrain",
            {"phase": "Training", "modelVersion": 4, "servedVersion": 3, "progress": loading},
        ),
        chatbot("first", {"phase": "Training", "modelVersion": 1, "progress": loading}),
        # A version that never loaded (LoadTimeout): the old one only; none without one.
        chatbot("gave-up", {"phase": "Ready", "modelVersion": 6, "servedVersion": 5}),
        chatbot("broken", {"phase": "Failed", "modelVersion": 1}),
        # Retraining, Job still running: the answering version only.
        chatbot(
            "training",
            {
                "phase": "Training",
                "modelVersion": 2,
                "servedVersion": 2,
                "progress": {"step": "training"},
            },
        ),
        chatbot("deleting", {"phase": "Ready", "modelVersion": 1, "servedVersion": 1}, True),
    ]
    assert served_versions(chatbots) == {
        "ready": [3],
        "retrain": [3, 4],
        "first": [1],
        "gave-up": [5],
        "training": [2],
    }


def test_conditions_keep_their_transition_time_until_their_status_changes():
    first = merge_conditions([], [{"type": "Ready", "status": "False", "reason": "NoModel"}], 1)
    first[0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    same = merge_conditions(first, [{"type": "Ready", "status": "False", "reason": "X"}], 2)
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert same[0]["observedGeneration"] == 2
    flipped = merge_conditions(same, [{"type": "Ready", "status": "True", "reason": "Serving"}], 2)
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_crd_is_structural_with_status_and_printer_columns():
    crd = load_crd()
    assert kubernetes_validate.validate(crd, K8S_VERSION, strict=True)
    assert crd["spec"]["names"]["shortNames"] == ["cb"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Public", "Phase", "Version", "Served", "Age"]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path):
    for document in yaml.safe_load_all(path.read_text()):
        if document["kind"] == KIND:
            assert document["apiVersion"] == API_VERSION
            jsonschema.Draft7Validator(crd_schema()).validate(document)
        else:
            assert kubernetes_validate.validate(document, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    "spec, problem",
    [
        ({"source": ""}, "does not match"),
        ({"source": "https://example.com/export.zip"}, "does not match"),
        ({"source": SOURCE, "training": {"gpu": -1}}, "minimum"),
        ({"source": SOURCE, "training": {"maxMinutes": 0}}, "minimum"),
    ],
)
def test_crd_schema_refuses_bad_specs(spec, problem):
    with pytest.raises(jsonschema.ValidationError, match=problem):
        jsonschema.Draft7Validator(crd_schema()).validate({"spec": spec})

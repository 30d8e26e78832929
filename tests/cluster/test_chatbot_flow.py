"""A chatbot's whole life on a real API server, driven through the backend API.

The operator and the backend run as processes with the chart's environment and their own
ServiceAccount tokens; the Job controller turns the operator's Job into a pod, which the
test runs as a kubelet would (see `kubelet.py`); the model mirror and model server run as
the release's model pod (`model_pod.py`), fed by the operator's ConfigMap.
"""

from __future__ import annotations

import json
import shutil

import boto3
import pytest
import requests

from mimical.errors import NotFoundError
from mimical.kube.manifests import serving_entries
from mimical.serving.client import ModelClient
from mimical.testing.release import FULLNAME
from tests.cluster.conftest import save_listing
from tests.cluster.kubelet import run_training_pod


@pytest.fixture
def export_zip(sample_export, tmp_path):
    return shutil.make_archive(str(tmp_path / "messenger"), "zip", sample_export("messenger"))


def get_json(control_plane, namespace: str, *what: str, check: bool = True) -> dict | None:
    result = control_plane.kubectl("get", *what, f"--namespace={namespace}", "-o=json", check=check)
    return json.loads(result.stdout) if result.returncode == 0 else None


def chatbot_phase(control_plane, namespace: str, name: str) -> str | None:
    chatbot = get_json(control_plane, namespace, "chatbot", name, check=False) or {}
    return chatbot.get("status", {}).get("phase")


def training_job_name(control_plane, namespace: str, name: str) -> str | None:
    chatbot = get_json(control_plane, namespace, "chatbot", name, check=False) or {}
    return chatbot.get("status", {}).get("trainingJob")


def training_pod(control_plane, namespace: str, job: str) -> dict | None:
    pods = get_json(control_plane, namespace, "pods", f"--selector=job-name={job}")["items"]
    return pods[0] if pods else None


def served_models(control_plane, namespace: str) -> dict:
    configmap = get_json(control_plane, namespace, "configmap", f"{FULLNAME}-tfserving-models")
    return serving_entries(configmap["data"])


def stored_keys(release, name: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=release.s3_endpoint, region_name="us-east-1")
    listing = s3.list_objects_v2(Bucket=release.bucket)
    return [o["Key"] for o in listing.get("Contents", []) if f"/{name}/" in o["Key"]]


def create_chatbot(backend: str, name: str, export_zip: str) -> str:
    with open(export_zip, "rb") as export:
        response = requests.post(
            f"{backend}/api/chatbots",
            data={"name": name, "public": "true"},
            files={"export": ("export.zip", export, "application/zip")},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    return response.json()["owner_token"]


def train(control_plane, release, name: str, job: str, tmp_path) -> None:
    """Wait for the Job's pod, then be its kubelet: run it and report it Succeeded."""
    namespace = release.namespace
    pod = control_plane.wait_for(
        f"the pod of Job {job}", lambda: training_pod(control_plane, namespace, job)
    )
    # It runs as the chart's training account, whose IAM role is its only S3 access.
    assert pod["spec"]["serviceAccountName"] == f"{FULLNAME}-training"
    (container,) = pod["spec"]["containers"]
    assert not [e for e in container["env"] if e["name"].startswith("AWS_SECRET")]
    assert container["imagePullPolicy"] == "IfNotPresent"  # the chart's training.image
    finished = run_training_pod(control_plane, pod, tmp_path / "pod")
    assert finished.returncode == 0, finished.stderr[-3000:]


def answers(model_server: ModelClient, name: str) -> bool:
    """Whether the model server has a version of `name` to answer with."""
    try:
        model_server.status(name)
    except NotFoundError:
        return False
    return True


def chatbot_secret_keys(control_plane, namespace: str, name: str) -> set[str]:
    """The keys of chatbot `name` in the chart's chatbots' Secret."""
    secret = get_json(control_plane, namespace, "secret", f"{FULLNAME}-chatbot-secrets")
    return {key for key in secret.get("data") or {} if key.startswith(f"{name}.")}


def test_chatbot_from_upload_to_ready_to_deleted(
    control_plane, release, operator, backend, export_zip, tmp_path
):
    namespace, name = release.namespace, "alice"
    token = create_chatbot(backend, name, export_zip)
    # The backend creates the Chatbot, then its build sets `spec.source` (a new generation):
    # the Job's name comes from the status, where the operator records it.
    job = control_plane.wait_for(
        "the operator's training Job",
        lambda: training_job_name(control_plane, namespace, name),
        timeout=60,
    )
    control_plane.wait_for(
        f"Job {job}",
        lambda: get_json(control_plane, namespace, "job", job, check=False),
        timeout=60,
    )
    control_plane.wait_for(
        "phase Training", lambda: chatbot_phase(control_plane, namespace, name) == "Training"
    )
    train(control_plane, release, name, job, tmp_path)

    control_plane.wait_for(
        "the Job controller to complete the Job",
        lambda: any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in get_json(control_plane, namespace, "job", job)["status"].get("conditions", [])
        ),
    )
    control_plane.wait_for(
        "phase Ready", lambda: chatbot_phase(control_plane, namespace, name) == "Ready"
    )
    assert served_models(control_plane, namespace) == {name: [1]}
    api_view = requests.get(f"{backend}/api/chatbots/{name}", timeout=10).json()
    assert (api_view["phase"], api_view["model_version"]) == ("Ready", 1)
    # The raw export went once imported; the owner token's digest is in the chart's Secret.
    assert not [key for key in stored_keys(release, name) if "/uploads/" in key]
    assert chatbot_secret_keys(control_plane, namespace, name) == {f"{name}.ownerTokenHash"}
    assert requests.get(operator.liveness_url, timeout=10).status_code == 200

    command = ["kubectl", "get", "chatbots", f"--namespace={namespace}"]
    listing = control_plane.kubectl(*command[1:]).stdout
    save_listing("kubectl-get-chatbots.txt", command, listing)
    header, row = listing.splitlines()
    assert header.split() == ["NAME", "PUBLIC", "PHASE", "VERSION", "SERVED", "AGE"]
    assert row.split()[:5] == [name, "true", "Ready", "1", "True"]
    # Ready means answering: the model server the operator asked gives replies.
    model_server = ModelClient(release.model_server)
    assert model_server.status(name) == 1
    assert isinstance(model_server.reply(name, "hey, how are you?", timeout=60), str)

    deleted = requests.delete(
        f"{backend}/api/chatbots/{name}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert deleted.status_code == 200, deleted.text
    control_plane.wait_for(
        "the Chatbot to go",
        lambda: get_json(control_plane, namespace, "chatbot", name, check=False) is None,
    )
    assert stored_keys(release, name) == []
    assert served_models(control_plane, namespace) == {}
    assert chatbot_secret_keys(control_plane, namespace, name) == set()
    # Unlisted, so the mirror drops its files and the model server unloads it.
    control_plane.wait_for(
        f"{name} to stop answering", lambda: not answers(model_server, name), timeout=120
    )
    model_server.close()
    # Its Job was owned by the Chatbot: the garbage collector removes it.
    control_plane.wait_for(
        "the Chatbot's Job to be collected",
        lambda: get_json(control_plane, namespace, "job", job, check=False) is None,
    )
    # Gone: the API answers as for any name it will not confirm (401, no enumeration).
    assert requests.get(f"{backend}/api/chatbots/{name}", timeout=10).status_code == 401

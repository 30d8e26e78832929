"""The real kopf operator against a mock API server (kmock) and S3 (moto).

The tests play the parts the cluster plays: they create Chatbots like kubectl,
write the model a training pod would upload, and finish Jobs the way the Job
controller does; the operator does the rest on its own.
"""

from __future__ import annotations

import dataclasses

import kubernetes_validate

from mimical.kube import API_VERSION
from mimical.kube.manifests import MODEL_CONFIG_KEY, serving_entries
from mimical.testing.servers import wait_for
from tests.kube.conftest import OperatorThread

K8S_VERSION = "1.30"


def upload_model(storage, name: str, version: int, loss: float = 1.5) -> None:
    """What the training Job uploads: a TF Serving version directory with metrics."""
    prefix = f"models/{name}/{version}/"
    storage.put_bytes(prefix + "variables/variables.index", b"index")
    storage.put_bytes(prefix + "assets.extra/metrics.json", b'{"loss": %f, "curve": [1]}' % loss)
    storage.put_bytes(prefix + "saved_model.pb", b"graph")


def phase_of(kubectl, name: str, phase: str, generation: int = 1):
    def check():
        chatbot = kubectl.chatbot(name)
        status = (chatbot or {}).get("status", {})
        ok = status.get("phase") == phase and status.get("observedGeneration") == generation
        return chatbot if ok else None

    return wait_for(f"{name} to be {phase} (generation {generation})", check)


def conditions(chatbot: dict) -> dict[str, dict]:
    return {c["type"]: c for c in chatbot["status"]["conditions"]}


def events_for(kubectl, name: str, reasons: set[str]) -> list[dict]:
    """The events about `name`, once some have each of `reasons`: kopf posts events from a
    background task, so they may arrive after the status they go with."""

    def check():
        events = [e for e in kubectl.list("v1", "events") if e["involvedObject"]["name"] == name]
        return events if reasons <= {e["reason"] for e in events} else None

    return wait_for(f"{sorted(reasons)} events about {name}", check)


def test_create_trains_on_gpu_then_serves(operator, kubectl, storage):
    spec = {
        "source": kubectl.source("alice"),
        "public": True,
        "training": {"gpu": 1, "maxMinutes": 5},
    }
    assert kubectl.apply_chatbot("alice", spec).status_code in (200, 201)

    training = phase_of(kubectl, "alice", "Training")
    assert training["status"]["trainingJob"] == "alice-train-1"
    assert conditions(training)["Ready"]["status"] == "False"
    job = kubectl.get("batch/v1", "jobs", "alice-train-1")
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Chatbot",
        "alice",
        training["metadata"]["uid"],
    )
    assert owner["controller"] is True
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["MIMICAL_SOURCE"]["value"] == kubectl.source("alice")
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mimical-s3"

    upload_model(storage, "alice", 1700000000)
    kubectl.finish_job("alice-train-1", succeeded=True)

    ready = phase_of(kubectl, "alice", "Ready")
    status = ready["status"]
    assert status["endpoint"] == operator.settings.serving_endpoint
    assert status["modelVersion"] == 1700000000
    assert status["modelURI"] == f"{storage.root}models/alice/1700000000"
    assert status["metrics"] == {"loss": 1.5}
    assert status["progress"]["percent"] == 100
    assert {t: c["status"] for t, c in conditions(ready).items()} == {
        "Imported": "True",
        "Trained": "True",
        "Served": "True",
        "Ready": "True",
    }
    configmap = kubectl.get("v1", "configmaps", operator.settings.serving_configmap)
    kubernetes_validate.validate(configmap, K8S_VERSION, strict=True)
    assert serving_entries(configmap["data"]) == {"alice": [1700000000]}
    assert f'base_path: "{storage.root}models/alice"' in configmap["data"][MODEL_CONFIG_KEY]
    events = events_for(kubectl, "alice", {"Training", "Ready"})
    for event in events:  # kopf posts them to the core v1 events endpoint
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Event", **event}, K8S_VERSION, strict=True
        )


def test_training_progress_reaches_the_status(operator, kubectl, storage):
    kubectl.apply_chatbot("hugo", {"source": kubectl.source("hugo")}).raise_for_status()
    phase_of(kubectl, "hugo", "Training")
    storage.put_bytes(
        "training/hugo/hugo-train-1.json",
        b'{"step": "training", "percent": 42, "message": "epoch 2", "imported": true}',
    )

    def progress():
        status = kubectl.chatbot("hugo")["status"]
        return status["progress"] if status["progress"]["percent"] == 42 else None

    assert wait_for("progress 42%", progress)["step"] == "training"


def test_job_failure_marks_failed_with_reason_and_a_spec_change_retries(operator, kubectl, storage):
    kubectl.apply_chatbot("bob", {"source": kubectl.source("bob")}).raise_for_status()
    phase_of(kubectl, "bob", "Training")
    # The runner leaves its last words in the progress file; the Job controller its reason.
    storage.put_bytes(
        "training/bob/bob-train-1.json",
        b'{"step": "failed", "imported": false, "message": "messenger.zip: not a chat export"}',
    )
    kubectl.finish_job(
        "bob-train-1", False, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    )

    failed = phase_of(kubectl, "bob", "Failed")
    trained = conditions(failed)["Trained"]
    assert (trained["status"], trained["reason"]) == ("False", "BackoffLimitExceeded")
    assert "not a chat export" in trained["message"]
    assert conditions(failed)["Imported"]["status"] == "False"
    events = events_for(kubectl, "bob", {"TrainingFailed"})
    warnings = [e for e in events if e["reason"] == "TrainingFailed"]
    assert warnings[0]["type"] == "Warning"
    assert "not a chat export" in warnings[0]["message"]

    fixed = kubectl.source("bob", "2/whatsapp.zip")
    kubectl.patch(API_VERSION, "chatbots", "bob", {"spec": {"source": fixed}})
    retrying = phase_of(kubectl, "bob", "Training", generation=2)
    assert retrying["status"]["trainingJob"] == "bob-train-2"
    upload_model(storage, "bob", 3)
    kubectl.finish_job("bob-train-2", succeeded=True)
    assert phase_of(kubectl, "bob", "Ready", generation=2)["status"]["modelVersion"] == 3


def test_spec_change_trains_a_new_version_while_the_old_one_serves(operator, kubectl, storage):
    kubectl.apply_chatbot("carol", {"source": kubectl.source("carol")}).raise_for_status()
    phase_of(kubectl, "carol", "Training")
    upload_model(storage, "carol", 1)
    kubectl.finish_job("carol-train-1", succeeded=True)
    phase_of(kubectl, "carol", "Ready")

    kubectl.patch(API_VERSION, "chatbots", "carol", {"spec": {"training": {"epochs": 3}}})
    retraining = phase_of(kubectl, "carol", "Training", generation=2)
    assert conditions(retraining)["Ready"]["status"] == "True"  # version 1 still serves
    configmap = kubectl.get("v1", "configmaps", operator.settings.serving_configmap)
    assert serving_entries(configmap["data"]) == {"carol": [1]}
    job = kubectl.get("batch/v1", "jobs", "carol-train-2")
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MIMICAL_TRAINING_EPOCHS"] == "3"

    upload_model(storage, "carol", 2, loss=0.9)
    kubectl.finish_job("carol-train-2", succeeded=True)
    ready = phase_of(kubectl, "carol", "Ready", generation=2)
    assert ready["status"]["modelVersion"] == 2
    assert ready["status"]["metrics"] == {"loss": 0.9}
    configmap = kubectl.get("v1", "configmaps", operator.settings.serving_configmap)
    assert serving_entries(configmap["data"]) == {"carol": [2]}


def test_restarted_operator_makes_no_duplicate_job(operator_settings, kubectl, storage):
    with OperatorThread(operator_settings):
        kubectl.apply_chatbot("dave", {"source": kubectl.source("dave")}).raise_for_status()
        phase_of(kubectl, "dave", "Training")
        first_uid = kubectl.get("batch/v1", "jobs", "dave-train-1")["metadata"]["uid"]

    # The training finishes while no operator runs; the next one picks it up.
    upload_model(storage, "dave", 5)
    kubectl.finish_job("dave-train-1", succeeded=True)
    with OperatorThread(operator_settings):
        assert phase_of(kubectl, "dave", "Ready")["status"]["modelVersion"] == 5
        jobs = kubectl.jobs("dave")
        assert [(j["metadata"]["name"], j["metadata"]["uid"]) for j in jobs] == [
            ("dave-train-1", first_uid)
        ]


def test_delete_empties_the_s3_prefix_and_the_serving_entry(operator, kubectl, storage):
    for name in ("erin", "frank"):
        kubectl.apply_chatbot(name, {"source": kubectl.source(name)}).raise_for_status()
        phase_of(kubectl, name, "Training")
        storage.put_bytes(f"uploads/{name}/1/export.zip", b"zip")
        storage.put_bytes(f"corpora/{name}/7.jsonl", b"{}")
        upload_model(storage, name, 7)
        kubectl.finish_job(f"{name}-train-1", succeeded=True)
        phase_of(kubectl, name, "Ready")

    assert kubectl.delete(API_VERSION, "chatbots", "erin").status_code == 200
    wait_for("erin to be gone", lambda: kubectl.chatbot("erin") is None)
    for prefix in ("uploads/erin/", "corpora/erin/", "models/erin/", "training/erin/"):
        assert storage.list(prefix) == []
    assert storage.list("models/frank/")  # the other chatbot keeps its model
    configmap = kubectl.get("v1", "configmaps", operator.settings.serving_configmap)
    assert serving_entries(configmap["data"]) == {"frank": [7]}


def test_invalid_specs_are_refused_or_marked_failed(operator, kubectl):
    refused = kubectl.apply_chatbot(
        "gina", {"source": kubectl.source("gina"), "training": {"gpu": -1}}
    )
    assert refused.status_code == 422
    assert "gpu" in refused.json()["message"]
    assert kubectl.apply_chatbot("gina", {"public": "yes"}).status_code == 422

    # Passes the schema, but the name cannot name a Job and a served model.
    long_name = "a-very-long-persona-name-that-cannot-fit-in-a-job-name"
    kubectl.apply_chatbot(long_name, {"source": kubectl.source(long_name)}).raise_for_status()
    failed = phase_of(kubectl, long_name, "Failed")
    trained = conditions(failed)["Trained"]
    assert trained["reason"] == "InvalidSpec" and "at most 40" in trained["message"]
    assert kubectl.jobs(long_name) == []


def test_chatbot_without_source_waits_pending_until_one_is_set(operator, kubectl):
    kubectl.apply_chatbot("ivy", {"public": True}).raise_for_status()
    pending = phase_of(kubectl, "ivy", "Pending")
    assert conditions(pending)["Imported"]["reason"] == "NoSource"
    assert kubectl.jobs("ivy") == []
    kubectl.patch(
        API_VERSION, "chatbots", "ivy", {"spec": {"source": kubectl.source("ivy"), "me": "Ivy"}}
    )
    phase_of(kubectl, "ivy", "Training", generation=2)
    job = kubectl.get("batch/v1", "jobs", "ivy-train-2")
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MIMICAL_ME"] == "Ivy"


def test_an_outcome_the_job_event_could_not_record_is_recorded_later(
    kubectl, storage, operator_settings, s3_link, job_event_failures
):
    # The operator reaches S3 through a link the test can cut; the test writes directly.
    settings = dataclasses.replace(operator_settings, s3_endpoint_url=s3_link.url)
    with OperatorThread(settings):
        kubectl.apply_chatbot("jack", {"source": kubectl.source("jack")}).raise_for_status()
        phase_of(kubectl, "jack", "Training")
        # The pod uploads its model and ends; by then S3 is unreachable for the operator,
        # so the Job's event cannot look for the model...
        upload_model(storage, "jack", 1)
        s3_link.cut()
        kubectl.finish_job("jack-train-1", succeeded=True)
        wait_for("the Job event handler to fail", lambda: job_event_failures)
        assert kubectl.chatbot("jack")["status"]["phase"] == "Training"

        # ...and the progress timer records it once S3 is back.
        s3_link.restore()
        assert phase_of(kubectl, "jack", "Ready")["status"]["modelVersion"] == 1

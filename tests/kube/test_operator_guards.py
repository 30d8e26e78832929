"""What the operator refuses and how it recovers: specs reaching past their own persona,
Jobs that end or vanish while nobody could record it, a deleted chatbot's secrets.

Same setting as test_operator.py: the real operator against kmock and moto.
"""

from __future__ import annotations

import time

import boto3
import requests

from mimical.kube import API_VERSION
from mimical.kube.manifests import serving_config_data, serving_entries
from mimical.testing.servers import free_port, wait_for
from tests.kube.conftest import OperatorThread
from tests.kube.test_operator import conditions, phase_of, upload_model


def test_a_source_of_another_persona_is_refused_without_a_job(operator, kubectl):
    # Someone who may edit alice points her at bob's upload: it would train on bob's chats.
    kubectl.apply_chatbot("alice", {"source": kubectl.source("bob")}).raise_for_status()
    trained = conditions(phase_of(kubectl, "alice", "Failed"))["Trained"]
    assert trained["reason"] == "InvalidSpec" and "its own objects" in trained["message"]
    assert kubectl.jobs("alice") == []
    # Pointing it back at its own upload trains.
    own = {"spec": {"source": kubectl.source("alice")}}
    kubectl.patch(API_VERSION, "chatbots", "alice", own)
    phase_of(kubectl, "alice", "Training", generation=2)


def test_a_training_image_off_the_allow_list_is_refused_without_a_job(operator, kubectl):
    spec = {"source": kubectl.source("mallory"), "training": {"image": "evil.example/x:1"}}
    kubectl.apply_chatbot("mallory", spec).raise_for_status()
    trained = conditions(phase_of(kubectl, "mallory", "Failed"))["Trained"]
    assert trained["reason"] == "InvalidSpec" and "training.allowedImages" in trained["message"]
    assert kubectl.jobs("mallory") == []


def test_a_job_that_failed_while_s3_was_down_is_recorded_once_it_is_back(
    operator, kubectl, s3_bucket, s3_endpoint, job_event_failures
):
    """The Job's event comes while the operator cannot read storage (its pod could not
    write its last words either): the progress timer records the failure later."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    kubectl.apply_chatbot("nina", {"source": kubectl.source("nina")}).raise_for_status()
    phase_of(kubectl, "nina", "Training")
    s3.delete_bucket(Bucket=s3_bucket)  # empty so far: storage is "down"
    kubectl.finish_job("nina-train-1", False, "BackoffLimitExceeded", "pod failed twice")
    wait_for("the Job event handler to fail", lambda: job_event_failures)
    assert kubectl.chatbot("nina")["status"]["phase"] == "Training"

    s3.create_bucket(Bucket=s3_bucket)
    trained = conditions(phase_of(kubectl, "nina", "Failed"))["Trained"]
    assert (trained["reason"], trained["message"]) == ("BackoffLimitExceeded", "pod failed twice")


def test_a_failed_jobs_raw_export_is_deleted(operator, kubectl, storage):
    storage.put_bytes("uploads/olga/1/messenger.zip", b"zip")
    storage.put_bytes("corpora/olga/1.jsonl", b"{}")  # not an upload: it stays
    kubectl.apply_chatbot("olga", {"source": kubectl.source("olga")}).raise_for_status()
    phase_of(kubectl, "olga", "Training")
    kubectl.finish_job("olga-train-1", False, "BackoffLimitExceeded", "pod failed twice")
    phase_of(kubectl, "olga", "Failed")
    # The raw export does not outlive a build that is over (the Job deletes it on success).
    assert storage.list("uploads/olga/") == []
    assert storage.list("corpora/olga/") == ["corpora/olga/1.jsonl"]


def test_a_lost_job_is_created_again_without_a_restart(operator, kubectl):
    kubectl.apply_chatbot("otto", {"source": kubectl.source("otto")}).raise_for_status()
    phase_of(kubectl, "otto", "Training")
    first = kubectl.get("batch/v1", "jobs", "otto-train-1")["metadata"]["uid"]
    kubectl.delete("batch/v1", "jobs", "otto-train-1")

    def recreated():
        job = kubectl.get("batch/v1", "jobs", "otto-train-1")
        return job if job and job["metadata"]["uid"] != first else None

    wait_for("the Job to be made again", recreated)
    assert kubectl.chatbot("otto")["status"]["phase"] == "Training"


def test_deleting_a_chatbot_removes_its_keys_from_the_shared_secret(operator, kubectl):
    name = operator.settings.chatbot_secrets
    data = {
        "pia.passwordHash": "aGFzaA==",
        "pia.ownerTokenHash": "ZA==",
        "rob.ownerTokenHash": "ZA==",
    }
    kubectl.patch("v1", "secrets", name, {"data": data})
    kubectl.apply_chatbot("pia", {"public": True}).raise_for_status()
    phase_of(kubectl, "pia", "Pending")
    assert kubectl.delete(API_VERSION, "chatbots", "pia").status_code == 200
    wait_for("pia to be gone", lambda: kubectl.chatbot("pia") is None)
    assert set(kubectl.get("v1", "secrets", name)["data"]) == {"rob.ownerTokenHash"}


def test_a_deleted_chatbots_storage_goes_only_after_its_training_pod_stops(
    operator, kubectl, storage
):
    """A training pod outlives its deleted Job by its grace period (or a stuck kubelet):
    deleting the storage before it stops would let it upload a model nobody deletes."""
    kubectl.apply_chatbot("tess", {"source": kubectl.source("tess")}).raise_for_status()
    phase_of(kubectl, "tess", "Training")
    storage.put_bytes("uploads/tess/1/messenger.zip", b"zip")
    pod_name = "tess-train-1-x7k2p"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name, "labels": {"mimical.dev/chatbot": "tess"}},
        "spec": {"containers": [{"name": "train", "image": "mimical-training:test"}]},
    }
    kubectl.create("v1", "pods", pod).raise_for_status()
    kubectl.patch("v1", "pods", pod_name, {"status": {"phase": "Running"}}, "status")

    assert kubectl.delete(API_VERSION, "chatbots", "tess").status_code == 200
    wait_for("tess's Job to be stopped", lambda: kubectl.jobs("tess") == [])
    time.sleep(1)  # a few of the finalizer's tries
    assert kubectl.chatbot("tess") is not None
    assert storage.list("uploads/tess/")

    kubectl.patch("v1", "pods", pod_name, {"status": {"phase": "Failed"}}, "status")
    wait_for("tess to be gone", lambda: kubectl.chatbot("tess") is None, timeout=30)
    assert storage.list("uploads/tess/") == []


def test_the_served_list_is_rebuilt_from_the_chatbots(operator, kubectl, storage):
    """A rollback restores an old copy of the list, or someone deletes it: the operator
    makes it say again what the Chatbots say (at start and every few progress ticks)."""
    configmap = operator.settings.serving_configmap
    kubectl.apply_chatbot("quinn", {"source": kubectl.source("quinn")}).raise_for_status()
    phase_of(kubectl, "quinn", "Training")
    upload_model(storage, "quinn", 4)
    kubectl.finish_job("quinn-train-1", succeeded=True)
    phase_of(kubectl, "quinn", "Ready")

    def served():
        found = kubectl.get("v1", "configmaps", configmap)
        return serving_entries(found["data"]) if found else None

    stale = serving_config_data({"ghost": [3]}, operator.settings.storage_url)
    kubectl.patch("v1", "configmaps", configmap, {"data": stale})
    wait_for("the stale list to heal", lambda: served() == {"quinn": [4]})
    assert kubectl.delete("v1", "configmaps", configmap).status_code == 200
    wait_for("the deleted list to come back", lambda: served() == {"quinn": [4]})


def test_the_operator_answers_its_liveness_probe(operator_settings, kubectl):
    port = free_port()
    settings = operator_settings.with_overrides(
        operator_liveness=f"http://127.0.0.1:{port}/healthz"
    )
    with OperatorThread(settings):
        response = wait_for(
            "the liveness endpoint",
            lambda: _get(f"http://127.0.0.1:{port}/healthz"),
        )
        assert response.status_code == 200


def _get(url: str):
    try:
        return requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None

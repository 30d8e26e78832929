"""The `kubernetes` orchestrator behind the backend API, with the real operator running."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import kubernetes_validate
import pytest

from mimical.chatbot import Phase
from mimical.errors import ConflictError, InputError, UnavailableError
from mimical.kube import API_VERSION
from mimical.orchestration import open_orchestrator, open_registry
from mimical.storage import next_version
from mimical.testing.servers import wait_for
from tests.kube.test_operator import upload_model


@pytest.fixture
def orchestrator(operator_settings, storage, kubectl):
    settings = operator_settings.with_overrides(orchestrator="kubernetes")
    registry = open_registry(settings)
    orchestrator = open_orchestrator(settings, storage, registry)
    yield orchestrator
    orchestrator.close()
    registry.close()


def test_registry_keeps_chatbots_as_resources_and_hashes_in_one_secret(orchestrator, kubectl):
    registry = orchestrator.registry
    secret_name = orchestrator.settings.chatbot_secrets
    chatbot, token = registry.create("alice", public=False, password="s3cret", me="Alice A.")
    assert (chatbot.phase, chatbot.has_password, chatbot.public) == (Phase.PENDING, True, False)

    resource = kubectl.chatbot("alice")
    ref = {"name": secret_name, "key": "alice.passwordHash"}
    assert resource["spec"]["passwordSecretRef"] == ref
    secret = kubectl.get("v1", "secrets", secret_name)
    assert set(secret["data"]) == {"alice.passwordHash", "alice.ownerTokenHash"}
    assert "s3cret" not in str(secret)
    kubernetes_validate.validate(secret, "1.30", strict=True)
    assert registry.verify_password("alice", "s3cret")
    assert not registry.verify_password("alice", "wrong")
    assert registry.verify_owner_token("alice", token)

    registry.create("bob", public=True)
    assert [c.name for c in registry.list_public()] == ["bob"]
    assert [c.name for c in registry.list_all()] == ["alice", "bob"]
    with pytest.raises(ConflictError):
        registry.create("bob", public=True)
    # Deleting a chatbot takes its keys and leaves the others'.
    registry.delete("bob")
    data = kubectl.get("v1", "secrets", secret_name)["data"]
    assert set(data) == {"alice.passwordHash", "alice.ownerTokenHash"}

    # A protected persona whose hash went missing opens for nobody...
    kubectl.patch("v1", "secrets", secret_name, {"data": {"alice.passwordHash": None}})
    with pytest.raises(UnavailableError):
        registry.verify_password("alice", "anything")
    # ...and one whose hash sits in a Secret the services may not read, neither.
    other = {"name": "alice-password", "key": "passwordHash"}
    kubectl.patch(API_VERSION, "chatbots", "alice", {"spec": {"passwordSecretRef": other}})
    with pytest.raises(UnavailableError, match=f"must name Secret {secret_name}"):
        registry.verify_password("alice", "s3cret")


def test_build_runs_through_the_operator_to_ready(orchestrator, operator, kubectl, storage):
    registry = orchestrator.registry
    registry.create("carol", public=True)
    key = "uploads/carol/1/export.zip"
    storage.put_bytes(key, b"zip")
    version = next_version(storage, "carol")
    orchestrator.build("carol", key, me="Carol")

    assert kubectl.chatbot("carol")["spec"]["source"] == storage.url(key)
    assert orchestrator.busy("carol")
    wait_for("the Job", lambda: kubectl.jobs("carol"))
    wait_for("importing", lambda: registry.get("carol").phase == Phase.IMPORTING)

    upload_model(storage, "carol", version)
    kubectl.finish_job("carol-train-2", succeeded=True)
    ready = wait_for("ready", lambda: (c := registry.get("carol")).phase == Phase.READY and c)
    assert ready.model_version == version and ready.servable
    assert ready.metrics == {"loss": 1.5}
    assert not orchestrator.busy("carol")
    assert next_version(storage, "carol") == version + 1

    orchestrator.delete("carol")
    registry.delete("carol")
    wait_for("carol to be gone", lambda: kubectl.chatbot("carol") is None)
    assert registry.find("carol") is None
    assert storage.list("uploads/carol/") == [] and storage.list("models/carol/") == []


def test_local_storage_is_refused(operator_settings, tmp_path):
    from mimical.storage import open_storage

    settings = operator_settings.with_overrides(orchestrator="kubernetes")
    with pytest.raises(InputError, match="needs s3://"):
        open_orchestrator(settings, open_storage(tmp_path.as_uri(), settings), registry=None)
    assert API_VERSION == "mimical.dev/v1alpha1"


def test_simultaneous_builds_start_one(orchestrator, kubectl, storage):
    registry = orchestrator.registry
    registry.create("dora", public=True)
    key = "uploads/dora/1/export.zip"
    storage.put_bytes(key, b"zip")
    start = threading.Barrier(4)

    def build(_) -> str:
        start.wait()
        try:
            orchestrator.build("dora", key)
        except ConflictError:
            return "refused"
        return "started"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(build, range(4)))
    assert outcomes == ["refused"] * 3 + ["started"]
    assert kubectl.chatbot("dora")["metadata"]["generation"] == 2  # one spec change
    with pytest.raises(ConflictError, match="already being built"):
        orchestrator.build("dora", key)


def test_a_write_that_starts_no_build_does_not_refuse_one(orchestrator, kubectl, storage):
    """The operator touches a just-created chatbot (finalizer, status) while the backend
    starts its build: the build's conditional patch meets a 409, looks again, and goes."""
    orchestrator.registry.create("fred", public=True)
    key = "uploads/fred/1/export.zip"
    storage.put_bytes(key, b"zip")
    read = orchestrator.cluster.get_chatbot
    reads = []

    def read_then_someone_writes(name):
        resource = read(name)
        if not reads:  # another client changes the resource after our first read
            patch = {"metadata": {"annotations": {"example.com/touched": "yes"}}}
            kubectl.patch(API_VERSION, "chatbots", name, patch)
        reads.append(resource["metadata"]["resourceVersion"])
        return resource

    orchestrator.cluster.get_chatbot = read_then_someone_writes
    orchestrator.build("fred", key)
    assert len(reads) == 2 and reads[0] != reads[1]  # refused once, then read afresh
    assert kubectl.chatbot("fred")["spec"]["source"] == storage.url(key)


def test_status_is_the_operators(orchestrator):
    orchestrator.registry.create("erin", public=True)
    with pytest.raises(NotImplementedError, match="the operator writes status"):
        orchestrator.registry.update_status("erin", phase=Phase.READY)

"""The backend API in Kubernetes mode: upload → Chatbot resource → operator → Ready → delete."""

from __future__ import annotations

import shutil

import pytest

from mimical.app import create_app
from mimical.appkit.component import get_settings
from mimical.appkit.resources import close_resources
from mimical.testing.servers import wait_for
from tests.kube.test_operator import upload_model


@pytest.fixture
def client(operator_settings, kubectl):
    settings = operator_settings.with_overrides(
        orchestrator="kubernetes", password_rate_limit="1000/minute", build_rate_limit="1000/minute"
    )
    app = create_app(settings, components=("api",), test_config={"TESTING": True})
    yield app.test_client()
    close_resources(app)


@pytest.fixture
def export_zip(sample_export, tmp_path):
    return shutil.make_archive(str(tmp_path / "messenger"), "zip", sample_export("messenger"))


def test_upload_becomes_a_chatbot_the_operator_serves(
    client, operator, kubectl, storage, export_zip
):
    with open(export_zip, "rb") as export:
        data = {"name": "alice", "public": "true", "export": (export, "export.zip")}
        response = client.post("/api/chatbots", data=data, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    token = response.get_json()["owner_token"]

    resource = kubectl.chatbot("alice")
    upload = resource["spec"]["source"]
    assert upload.startswith(storage.root + "uploads/alice/") and upload.endswith("export.zip")
    job = wait_for("the training Job", lambda: kubectl.jobs("alice"))[0]
    phase = client.get("/api/chatbots/alice").get_json()["phase"]
    assert phase in ("Pending", "Importing")

    upload_model(storage, "alice", 1)
    kubectl.finish_job(job["metadata"]["name"], succeeded=True)
    ready = wait_for(
        "Ready in the API",
        lambda: (body := client.get("/api/chatbots/alice").get_json())["phase"] == "Ready" and body,
    )
    assert ready["model_version"] == 1
    listed = client.get("/api/chatbots").get_json()["chatbots"]
    assert [c["name"] for c in listed] == ["alice"]

    deleted = client.delete("/api/chatbots/alice", headers={"Authorization": f"Bearer {token}"})
    assert deleted.status_code == 200
    wait_for("the resource to go", lambda: kubectl.chatbot("alice") is None)
    assert storage.list("uploads/alice/") == [] and storage.list("models/alice/") == []
    assert client.get("/api/chatbots/alice").status_code == 401  # gone: as if private


def test_chat_only_app_reads_chatbots_without_building_an_orchestrator(
    operator_settings, kubectl, tmp_path
):
    from mimical.appkit.dialog_app import close_dialog
    from mimical.appkit.resources import get_registry

    # On file:// storage a Kubernetes orchestrator refuses to start: the chat never makes one.
    settings = operator_settings.with_overrides(
        orchestrator="kubernetes", storage_url=tmp_path.as_uri(), model_server="127.0.0.1:9"
    )
    app = create_app(settings, components=("chat",), test_config={"TESTING": True})
    try:
        with app.app_context():
            get_registry().create("zoe", public=True)
        replies = app.test_client().post("/chat/messages", json={"text": "%show all"})
        assert any("zoe" in reply for reply in replies.get_json()["replies"])
        assert kubectl.chatbot("zoe") is not None  # the registry is the Chatbot resources
        assert "orchestrator" not in app.extensions["mimical"]
    finally:
        close_dialog(app)
        close_resources(app)


def test_a_password_change_rotates_the_secret_and_starts_no_build(client, kubectl, export_zip):
    from mimical.kube.registry import KubernetesRegistry

    with open(export_zip, "rb") as export:
        data = {"name": "vault", "password": "old", "export": (export, "export.zip")}
        created = client.post("/api/chatbots", data=data, content_type="multipart/form-data")
    assert created.status_code == 202, created.get_json()
    owner = {"Authorization": f"Bearer {created.get_json()['owner_token']}"}
    before = kubectl.chatbot("vault")["metadata"]
    registry = KubernetesRegistry.connect(get_settings(client.application))
    stamp = registry.get("vault").access_stamp

    changed = client.patch("/api/chatbots/vault", json={"password": "new"}, headers=owner)

    assert changed.status_code == 200, changed.get_json()
    after = kubectl.chatbot("vault")["metadata"]
    assert after["generation"] == before["generation"]  # an annotation: no new training Job
    assert registry.verify_password("vault", "new") and not registry.verify_password("vault", "old")
    assert registry.get("vault").access_stamp != stamp  # chats opened before are over
    registry.close()

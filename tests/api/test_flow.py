"""The whole embedded product: create → Ready → chat → retrain → delete, all real.

One chatbot is built from a sample Messenger export by the local orchestrator
(a worker process importing and training a tiny model), loaded by the in-process
model server, talked to through the web chat, retrained, and deleted.
"""

from __future__ import annotations

import pytest

from mimical.serve import load_into_app_models
from tests.api.conftest import wait_for_phase

pytestmark = pytest.mark.slow

NAME = "flowbot"
PASSWORD = "correct horse"


@pytest.fixture
def flow_app(make_app, settings):
    from mimical.model.train import tiny_config

    app = make_app(
        settings.with_overrides(upload_max_bytes=64 * 1024 * 1024),
        components=("api", "chat", "webhook"),
        test_config={"MIMICAL_TRAIN_OPTIONS": {"epochs": 1, "config": tiny_config()}},
    )
    app.config["MIMICAL_ON_DEPLOYED"] = load_into_app_models(app)
    yield app
    from mimical.appkit.dialog_app import close_dialog

    close_dialog(app)


def say(client, text: str) -> list[str]:
    response = client.post("/chat/messages", json={"text": text})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["replies"]


def test_create_ready_chat_retrain_delete(flow_app, export_zip):
    from mimical.appkit.resources import get_storage

    client = flow_app.test_client()
    with export_zip.open("rb") as export:
        created = client.post(
            "/api/chatbots",
            data={
                "name": NAME,
                "public": "false",
                "password": PASSWORD,
                "display_name": "Flow Bot",
                "export": (export, "export.zip"),
            },
            content_type="multipart/form-data",
        )
    assert created.status_code == 202, created.get_json()
    owner = {"Authorization": f"Bearer {created.get_json()['owner_token']}"}

    ready = wait_for_phase(client, NAME, {"Ready", "Failed"}, headers=owner)
    assert ready["phase"] == "Ready", ready
    assert ready["model_version"] == 1 and ready["versions"] == [1] and ready["progress"] == 1
    assert ready["metrics"]
    with flow_app.app_context():
        storage = get_storage()
    keys = storage.list("")
    assert "corpora/flowbot/1.jsonl" in keys and "models/flowbot/1/saved_model.pb" in keys
    assert not any(key.startswith("uploads/") for key in keys)  # deleted after import

    location = client.post(f"/api/chatbots/{NAME}/model", json={"password": PASSWORD})
    assert location.get_json() == {"name": NAME, "version": 1}

    assert say(client, "")[0] == "Hi! Who would you like to talk to?"
    assert "This persona is password protected. Please enter a password." in say(client, NAME)
    assert 'You are now chatting with Flow Bot. Type "%restart" to pick a new persona.' in say(
        client, PASSWORD
    )
    replies = say(client, "hey, how are you?")
    assert replies and all(isinstance(reply, str) and reply for reply in replies)

    with export_zip.open("rb") as export:
        retrain = client.post(
            f"/api/chatbots/{NAME}/retrain",
            data={"export": (export, "export.zip")},
            content_type="multipart/form-data",
            headers=owner,
        )
    assert retrain.status_code == 202, retrain.get_json()
    assert retrain.get_json()["model_version"] == 1  # the old version serves meanwhile
    retrained = wait_for_phase(
        client, NAME, {"Failed"}, headers=owner, until=lambda body: body["model_version"] == 2
    )
    assert retrained["versions"] == [1, 2] and retrained["phase"] == "Ready"

    deleted = client.delete(f"/api/chatbots/{NAME}", headers=owner)
    assert deleted.status_code == 200
    assert storage.list("") == []
    assert client.get(f"/api/chatbots/{NAME}").status_code == 401  # gone: as if private

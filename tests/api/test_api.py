"""Backend API behaviour: creation rules, privacy, owner token, aliases, error shape."""

from __future__ import annotations

import io
import logging
import time

import pytest

from tests.api.conftest import wait_for_phase
from tests.fixtures.metrics import scrape

GENERIC_IMPORT_FAILURE = "build failed: the export could not be used (the owner token shows why)"


def upload(client, export_zip, **fields):
    with export_zip.open("rb") as export:
        data = {"public": "true", **fields, "export": (export, "export.zip")}
        return client.post("/api/chatbots", data=data, content_type="multipart/form-data")


def test_create_answers_202_with_owner_token_then_failed_import_keeps_nothing(
    client, export_zip, storage, registry
):
    # `me` names nobody in the export, so the importer refuses it inside the build.
    response = upload(client, export_zip, name="ghost", me="Nobody In This Chat")
    assert response.status_code == 202
    body = response.get_json()
    assert body["chatbot"]["name"] == "ghost" and body["chatbot"]["phase"] == "Pending"
    assert len(body["owner_token"]) >= 32
    failed = wait_for_phase(client, "ghost", {"Failed", "Ready"}, timeout=120)
    assert failed["phase"] == "Failed"
    assert failed["message"] == GENERIC_IMPORT_FAILURE  # anyone may read a public status
    owner = {"Authorization": f"Bearer {body['owner_token']}"}
    assert "Nobody In This Chat" in client.get("/api/chatbots/ghost", headers=owner).json["message"]
    assert storage.list("") == ["training/ghost/failure.txt"]  # the reason; no upload or model
    assert failed["model_version"] is None


def test_name_rules(client, export_zip, registered):
    registered("taken")
    assert upload(client, export_zip, name="taken").status_code == 409
    bad = upload(client, export_zip, name="Not_A_Label")
    assert bad.status_code == 422 and bad.get_json()["error"] == "invalid_input"
    private = upload(client, export_zip, name="secret", public="false")
    assert private.status_code == 422 and "password" in private.get_json()["message"]
    missing = client.post(
        "/api/chatbots",
        data={"name": "nofile", "public": "true"},
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422 and "export" in missing.get_json()["message"]


def test_list_shows_only_public(client, registered):
    registered("alice")
    registered("bob", public=False, password="pw-bob")
    registered("carol", public=True, password="pw-carol")
    for path in ("/api/chatbots", "/getPublicChatbots"):
        chatbots = client.get(path).get_json()["chatbots"]
        assert [c["name"] for c in chatbots] == ["alice", "carol"]
        assert [c["password_protected"] for c in chatbots] == [False, True]


def test_private_status_needs_password_or_token(client, registered):
    token = registered("bob", public=False, password="pw-bob")
    assert client.get("/api/chatbots/bob").status_code == 401
    wrong = client.get("/api/chatbots/bob", headers={"X-Chatbot-Password": "nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "unauthorized"
    ok = client.get("/api/chatbots/bob", headers={"X-Chatbot-Password": "pw-bob"})
    assert ok.status_code == 200 and ok.get_json()["phase"] == "Ready"
    by_owner = client.get("/api/chatbots/bob", headers={"Authorization": f"Bearer {token}"})
    assert by_owner.status_code == 200


def test_model_location_public_and_private(client, registered):
    registered("alice")
    registered("bob", public=False, password="pw-bob")
    for path in ("/api/chatbots/alice/model", "/getPublicModel/alice"):
        location = client.get(path).get_json()
        assert location == {"name": "alice", "version": 1}
    assert client.get("/getPublicModel/bob").status_code == 401
    assert client.get("/api/chatbots/bob/model").status_code == 401
    header = client.get("/api/chatbots/bob/model", headers={"X-Chatbot-Password": "pw-bob"})
    assert header.status_code == 200 and header.get_json()["version"] == 1
    body = client.post("/api/chatbots/bob/model", json={"password": "pw-bob"})
    assert body.status_code == 200
    alias = client.post("/getModel", json={"name": "bob", "password": "pw-bob"})
    assert alias.status_code == 200 and alias.get_json() == {"name": "bob", "version": 1}
    assert client.post("/getModel", json={"name": "bob", "password": "x"}).status_code == 401
    assert client.post("/getModel", data="name=bob").status_code == 415
    assert client.post("/getModel", json={"name": "bob", "extra": 1}).status_code == 422


def test_model_of_unbuilt_chatbot_is_409(client, registered):
    registered("pending", ready=False)
    response = client.get("/api/chatbots/pending/model")
    assert response.status_code == 409 and "Pending" in response.get_json()["message"]


def test_delete_needs_owner_token_and_removes_everything(client, registered, storage, registry):
    token = registered("alice")
    storage.put_bytes("corpora/alice/1.jsonl", b"{}")
    storage.put_bytes("models/alicia/1/saved_model.pb", b"graph")  # a neighbour stays
    assert client.delete("/api/chatbots/alice").status_code == 401
    wrong = client.delete("/api/chatbots/alice", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    ok = client.delete("/api/chatbots/alice", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.get_json() == {"deleted": "alice"}
    assert storage.list("") == ["models/alicia/1/saved_model.pb"]
    assert registry.find("alice") is None
    assert client.get("/api/chatbots/alice").status_code == 401  # as if private


def test_retrain_needs_owner_token(client, registered, export_zip):
    registered("alice")
    with export_zip.open("rb") as export:
        response = client.post(
            "/api/chatbots/alice/retrain",
            data={"export": (export, "export.zip")},
            content_type="multipart/form-data",
        )
    assert response.status_code == 401


def test_not_found_has_the_error_shape(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert set(response.get_json()) == {"error", "message"}


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("get", "/api/chatbots/{name}", {}),
        ("get", "/api/chatbots/{name}", {"X-Chatbot-Password": "guess"}),
        ("get", "/api/chatbots/{name}", {"Authorization": "Bearer guess"}),
        ("get", "/api/chatbots/{name}/model", {}),
        ("get", "/api/chatbots/{name}/model", {"X-Chatbot-Password": "guess"}),
        ("get", "/getPublicModel/{name}", {}),
        ("delete", "/api/chatbots/{name}", {"Authorization": "Bearer guess"}),
        ("patch", "/api/chatbots/{name}", {"Authorization": "Bearer guess"}),
    ],
)
def test_unknown_and_private_chatbots_answer_alike(client, registered, method, path, headers):
    registered("hidden", public=False, password="pw-hidden")

    def answer(name):
        response = getattr(client, method)(path.format(name=name), headers=headers)
        body = response.get_json()
        return response.status_code, body["error"], body["message"].replace(repr(name), "NAME")

    assert answer("hidden") == answer("nobody")
    assert answer("hidden")[0] == 401


def test_operations_endpoints(client, registered):
    registered("alice")
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 404  # only on the metrics port
    metrics = scrape(client.application)
    assert 'mimical_chatbots{phase="Ready"} 1.0' in metrics
    assert "mimical_http_requests_total" in metrics
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert "/api/chatbots/{name}/retrain" in document["paths"]
    page = client.get("/docs").get_data(as_text=True)
    assert "/getPublicModel/{name}" in page


def test_password_guessing_is_rate_limited_in_redis(make_app, settings, redis_url):
    import redis

    app = make_app(settings, redis_url=redis_url, password_rate_limit="3/minute")
    client = app.test_client()
    with app.app_context():
        from mimical.appkit.resources import get_registry

        get_registry().create("locked", public=False, password="right")
    statuses = [
        client.get(
            "/api/chatbots/locked/model", headers={"X-Chatbot-Password": "guess"}
        ).status_code
        for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    limited = client.get("/api/chatbots/locked/model", headers={"X-Chatbot-Password": "right"})
    assert limited.status_code == 429 and limited.get_json()["error"] == "too_many_requests"
    # Another chatbot is limited separately, and the counters live in Redis.
    assert client.get("/api/chatbots/other/model").status_code == 401
    assert redis.Redis.from_url(redis_url).keys("*locked*")


def test_delete_during_build_stops_it_and_keeps_nothing(app, client, export_zip, storage):
    from mimical.appkit.resources import get_orchestrator

    created = upload(client, export_zip, name="shortlived")
    assert created.status_code == 202
    with app.app_context():
        assert get_orchestrator().busy("shortlived")
    token = created.get_json()["owner_token"]
    deleted = client.delete(
        "/api/chatbots/shortlived", headers={"Authorization": f"Bearer {token}"}
    )
    assert deleted.status_code == 200
    with app.app_context():
        orchestrator = get_orchestrator()
        deadline = time.monotonic() + 30
        while orchestrator.busy("shortlived") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not orchestrator.busy("shortlived")
    assert storage.list("") == []
    assert client.get("/api/chatbots/shortlived").status_code == 401


def test_builds_are_rate_limited_per_client_and_refused_uploads_are_free(
    make_app, settings, export_zip
):
    client = make_app(settings, build_rate_limit="1/minute").test_client()

    def junk(name):
        data = {"name": name, "public": "true", "export": (io.BytesIO(b"\0junk"), "x.bin")}
        return client.post("/api/chatbots", data=data, content_type="multipart/form-data")

    # Refused uploads do not use up the quota...
    assert [junk("first").status_code, junk("second").status_code] == [415, 415]
    # ...one that starts a build does (`me` names nobody: the build fails at once).
    assert upload(client, export_zip, name="third", me="Nobody In This Chat").status_code == 202
    limited = upload(client, export_zip, name="fourth")
    assert limited.status_code == 429 and limited.get_json()["error"] == "too_many_requests"


def test_passwords_never_reach_the_logs(client, caplog, export_zip):
    caplog.set_level(logging.DEBUG)
    upload(client, export_zip, name="quiet", public="false", password="hunter2-secret")
    client.get("/api/chatbots/quiet", headers={"X-Chatbot-Password": "wrong-secret-guess"})
    client.post("/getModel", json={"name": "quiet", "password": "another-secret-guess"})
    for secret in ("hunter2-secret", "wrong-secret-guess", "another-secret-guess"):
        assert secret not in caplog.text

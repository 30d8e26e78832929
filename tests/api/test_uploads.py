"""Hostile and broken uploads: each gets its clear 4xx and nothing lands in storage."""

from __future__ import annotations

import io

import pytest

from tests.api.conftest import TEST_UPLOAD_MAX_BYTES, wait_for_phase
from tests.hostile.cases import BUILD_FAILURES, LONG_FILENAME, UPLOADS, Upload

# The hostile corpus, plus what only the HTTP layer refuses.
HOSTILE = {
    **UPLOADS,
    "huge": Upload("export.zip", lambda: b"P" * (TEST_UPLOAD_MAX_BYTES + 1), 413, "larger than"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_upload_refused_and_nothing_stored(client, storage, registry, case):
    upload = HOSTILE[case]
    export = (io.BytesIO(upload.make()), upload.filename)
    response = client.post(
        "/api/chatbots",
        data={"name": "victim", "public": "true", "export": export},
        content_type="multipart/form-data",
    )
    body = response.get_json()
    assert response.status_code == upload.status, body
    assert set(body) == {"error", "message"}
    assert upload.words.lower() in body["message"].lower()
    assert "/tmp" not in body["message"]  # names the upload, not our scratch path
    assert storage.list("") == []
    assert registry.find("victim") is None


def test_not_multipart_is_415(client, storage):
    response = client.post("/api/chatbots", json={"name": "victim", "public": True})
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_format"
    assert storage.list("") == []


def test_a_300_character_file_name_is_shortened_not_a_500(client, export_zip):
    with export_zip.open("rb") as export:
        response = client.post(
            "/api/chatbots",
            # `me` names nobody: the build fails at once instead of training.
            data={
                "name": "longname",
                "public": "true",
                "me": "Nobody In This Chat",
                "export": (export, LONG_FILENAME[:-5] + ".zip"),
            },
            content_type="multipart/form-data",
        )
    assert response.status_code == 202, response.get_json()


def test_impossible_telegram_time_fails_the_build_cleanly(client):
    data, words = BUILD_FAILURES["Telegram date_unixtime 1e400"]
    response = client.post(
        "/api/chatbots",
        data={"name": "timey", "public": "true", "export": (io.BytesIO(data), "result.json")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    owner = {"Authorization": f"Bearer {response.get_json()['owner_token']}"}
    body = wait_for_phase(client, "timey", {"Failed", "Ready"}, headers=owner)
    assert body["phase"] == "Failed"
    assert words in body["message"] and "Traceback" not in body["message"]

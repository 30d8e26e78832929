"""Starting a build is one step, and a failed build's message shows no server path.

Simultaneous retrains go through a real HTTP server (threads, one request each), so
they race for the chatbot as browsers would: exactly one starts a build.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.api.conftest import wait_for_phase

RACERS = 4


def test_simultaneous_retrains_start_one_build(live_url, registered, export_zip, storage):
    token = registered("alice")
    export = export_zip.read_bytes()
    start = threading.Barrier(RACERS)

    def retrain(_) -> requests.Response:
        start.wait()
        return requests.post(
            f"{live_url}/api/chatbots/alice/retrain",
            files={"export": ("export.zip", export)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    with ThreadPoolExecutor(RACERS) as pool:
        responses = list(pool.map(retrain, range(RACERS)))

    assert sorted(r.status_code for r in responses) == [202] + [409] * (RACERS - 1)
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.headers["Content-Type"] == "application/json"
        assert refused.json()["error"] == "conflict"
        assert "already being built" in refused.json()["message"]
    # A refused request keeps no upload (the started build may already have imported its own).
    assert len(storage.list("uploads/alice/")) <= 1


@pytest.fixture
def shapeless_export(sample_export, tmp_path):
    """A Messenger export whose last chat is valid JSON of the wrong shape: it passes the
    upload check and fails in the import, inside the build."""
    export = shutil.copytree(sample_export("messenger", 10), tmp_path / "export")
    chats = sorted(export.rglob("message_1.json"))
    chats[-1].write_bytes(b"[1, 2, 3]")
    member = chats[-1].relative_to(export).as_posix()
    return shutil.make_archive(str(tmp_path / "export"), "zip", export), member


def test_failure_message_names_only_the_file_within_the_export(client, settings, shapeless_export):
    archive, member = shapeless_export
    with open(archive, "rb") as export:
        created = client.post(
            "/api/chatbots",
            data={"name": "public-bot", "public": "true", "export": (export, "export.zip")},
            content_type="multipart/form-data",
        )
    assert created.status_code == 202, created.get_json()

    # Public: anyone reads a generic line; a Messenger folder is named after a chat partner.
    failed = wait_for_phase(client, "public-bot", {"Failed", "Ready"}, timeout=120)
    assert failed["phase"] == "Failed"
    assert failed["message"] == (
        "build failed: the export could not be used (the owner token shows why)"
    )
    owner = {"Authorization": f"Bearer {created.get_json()['owner_token']}"}
    detail = client.get("/api/chatbots/public-bot", headers=owner).get_json()["message"]
    assert detail == f"export.zip:{member}: no 'messages' list"
    assert str(settings.home) not in detail

"""Hostile and broken uploads: each gets its clear 4xx and nothing lands in storage."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.api.conftest import TEST_UPLOAD_MAX_BYTES


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_bomb() -> bytes:
    """20 MB of zeros deflated to ~20 kB: far past the importer's ratio limit."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("messages/inbox/a/message_1.json", "w") as member,
    ):
        for _ in range(20):
            member.write(b"\0" * 1024 * 1024)
    return buffer.getvalue()


MESSENGER_JSON = (
    b'{"participants": [{"name": "A"}, {"name": "B"}], "messages": '
    b'[{"sender_name": "A", "timestamp_ms": 1, "content": "hi"}'
)

HOSTILE = {
    "empty": ("export.zip", lambda: b"", 422, "empty"),
    "zip bomb": ("export.zip", zip_bomb, 413, "zip bomb"),
    "dot-dot member": (
        "export.zip",
        lambda: zip_bytes({"../../etc/cron.d/evil.json": b"{}"}),
        422,
        "unsafe member",
    ),
    "absolute member": (
        "export.zip",
        lambda: zip_bytes({"/etc/passwd.json": b"{}"}),
        422,
        "unsafe member",
    ),
    "truncated JSON in zip": (
        "export.zip",
        lambda: zip_bytes({"messages/inbox/a_1/message_1.json": MESSENGER_JSON}),
        422,
        "truncated or invalid JSON",
    ),
    "truncated JSON file": ("result.json", lambda: MESSENGER_JSON, 422, "truncated or invalid"),
    "non-UTF-8 text": (
        "chat.txt",
        lambda: "12/01/2024, 10:00 - Zoé: déjà vu\n".encode("latin-1") * 50,
        422,
        "not UTF-8",
    ),
    "truncated zip": ("export.zip", lambda: zip_bytes({"a.json": b"{}" * 999})[:60], 422, "zip"),
    "binary junk": ("photo.png", lambda: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" * 20, 415, "not a chat"),
    "zip of photos": (
        "export.zip",
        lambda: zip_bytes({"photos/1.jpg": b"\xff\xd8\xff\0" * 10}),
        415,
        "",
    ),
    "JSON that is no export": ("data.json", lambda: b'{"hello": "world"}', 415, "not a"),
    "huge": ("export.zip", lambda: b"P" * (TEST_UPLOAD_MAX_BYTES + 1), 413, "larger than"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_upload_refused_and_nothing_stored(client, storage, registry, case):
    filename, make, status, words = HOSTILE[case]
    response = client.post(
        "/api/chatbots",
        data={"name": "victim", "public": "true", "export": (io.BytesIO(make()), filename)},
        content_type="multipart/form-data",
    )
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"error", "message"}
    assert words.lower() in body["message"].lower()
    assert "/tmp" not in body["message"]  # names the upload, not our scratch path
    assert storage.list("") == []
    assert registry.find("victim") is None


def test_not_multipart_is_415(client, storage):
    response = client.post("/api/chatbots", json={"name": "victim", "public": True})
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_format"
    assert storage.list("") == []

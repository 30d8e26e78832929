"""Uploads cannot exhaust a pod: counted attempts, slots, one spool, one zip budget."""

from __future__ import annotations

import io
import os
import socket
import threading
import zipfile

import pytest
from werkzeug.serving import make_server

from mimical.app import create_app
from mimical.appkit.resources import close_resources
from mimical.config import Settings
from mimical.corpus import sources
from mimical.corpus.importer import import_exports
from mimical.errors import TooLargeError
from mimical.testing.servers import wait_for
from mimical.web.uploads import received_export
from tests.fixtures.metrics import scrape

WHATSAPP = "12/01/2023, 10:00 - Bob: hi\n12/01/2023, 10:01 - Ann: yo\n"


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def make(**overrides):
        settings = Settings(home=tmp_path / "home", upload_max_bytes=4 * 1024 * 1024)
        app = create_app(
            settings.with_overrides(**overrides), components=["api"], test_config={"TESTING": True}
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_resources(app)


def junk_upload(client, name: str):
    data = {"name": name, "public": "true", "export": (io.BytesIO(b"\0junk"), "x.bin")}
    return client.post("/api/chatbots", data=data, content_type="multipart/form-data")


def test_refused_uploads_count_toward_the_upload_limit(make_app):
    client = make_app(upload_rate_limit="3/minute").test_client()
    assert [junk_upload(client, f"n{i}").status_code for i in range(3)] == [415] * 3
    limited = junk_upload(client, "n4")
    assert limited.status_code == 429 and limited.get_json()["error"] == "too_many_requests"


def test_an_upload_in_progress_holds_the_only_slot(make_app):
    app = make_app(upload_rate_limit="1000/minute")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        slow = socket.create_connection(("127.0.0.1", server.server_port))
        # Headers and the start of a 1 MB body, then nothing: the upload is still arriving.
        slow.sendall(
            b"POST /api/chatbots HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n"
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nslow\r\n'
        )
        client = app.test_client()
        # Probe only once the server says the slow one holds the slot: a probe upload sent
        # earlier could itself hold the slot when the slow one's headers arrive (then the
        # slow one is refused), which a loaded machine made likely.
        wait_for(
            "the slow upload to take the slot",
            lambda: "mimical_uploads_receiving 1.0" in scrape(app),
        )
        refused = junk_upload(client, "second")
        assert refused.status_code == 429
        assert refused.get_json() == {
            "error": "too_many_requests",
            "message": "too many uploads at once; try again when one is done",
        }
        slow.close()  # the slow upload ends: its slot is free again
        wait_for(
            "the slot to be free",
            lambda: "mimical_uploads_receiving 0.0" in scrape(app),
        )
        assert junk_upload(client, "third").status_code == 415
    finally:
        server.shutdown()
        server.server_close()


def test_an_upload_is_spooled_to_disk_once(make_app):
    app = make_app()
    data = {"export": (io.BytesIO(WHATSAPP.encode() * 2000), "WhatsApp Chat with Bob.txt")}
    with app.test_request_context(
        "/api/chatbots", method="POST", data=data, content_type="multipart/form-data"
    ):
        from flask import request

        with received_export(request.files["export"]) as path:
            # The received file and the spooled part are one file on disk, not a copy.
            assert os.stat(path).st_nlink == 2


def test_nested_zips_share_one_decompression_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_UNCOMPRESSED_BYTES", 1000)
    outer = tmp_path / "export.zip"
    with zipfile.ZipFile(outer, "w") as archive:
        for index in range(2):
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as nested:
                nested.writestr("chat.txt", WHATSAPP * 8)  # 448 bytes, zipped 163: fits alone
            archive.writestr(f"part{index}.zip", inner.getvalue())
    # 326 (the outer zip) + 448 (part0) leaves 226 for part1's 448.
    with pytest.raises(TooLargeError, match=r"zip:part1\.zip: uncompressed size exceeds 1000"):
        import_exports(outer, tmp_path / "out.jsonl", me="Ann")


def test_storage_errors_name_no_bucket_or_path(tmp_path, s3_endpoint):
    settings = Settings(
        home=tmp_path / "home",
        storage_url="s3://secret-bucket-name/prefix",
        s3_endpoint_url=s3_endpoint,  # the bucket does not exist there
    )
    app = create_app(settings, components=["api"], test_config={"TESTING": True})
    try:
        with app.app_context():
            from mimical.appkit.resources import get_registry

            _, token = get_registry().create("bot", public=True)
        retrain = app.test_client().post(
            "/api/chatbots/bot/retrain",
            data={"export": (io.BytesIO(WHATSAPP.encode()), "WhatsApp Chat with Bob.txt")},
            headers={"Authorization": f"Bearer {token}"},
            content_type="multipart/form-data",
        )
    finally:
        close_resources(app)
    assert retrain.status_code == 503
    body = retrain.get_json()
    assert body["error"] == "unavailable"
    assert "secret-bucket-name" not in body["message"] and str(tmp_path) not in body["message"]

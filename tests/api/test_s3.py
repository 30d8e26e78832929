"""The API on S3 storage (moto server): model URIs, refused uploads, failed builds."""

from __future__ import annotations

import io

import pytest

from mimical.appkit.resources import get_registry, get_storage
from tests.api.conftest import wait_for_phase


@pytest.fixture
def s3_app(make_app, settings, s3_endpoint, s3_bucket):
    return make_app(
        settings.with_overrides(
            storage_url=f"s3://{s3_bucket}/mimical", s3_endpoint_url=s3_endpoint
        )
    )


def bucket_keys(s3_endpoint, bucket) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_the_model_location_names_no_bucket_or_path(s3_app, s3_bucket):
    """Where models are stored is the operator's business: a stranger asking for a public
    persona's model learns its version, not the bucket, prefix or storage layout."""
    with s3_app.app_context():
        get_registry().create("alice", public=True)
        get_storage().put_bytes("models/alice/3/saved_model.pb", b"graph")
        get_registry().update_status("alice", phase="Ready", model_version=3, add_version=3)
    answer = s3_app.test_client().get("/getPublicModel/alice")
    assert answer.get_json() == {"name": "alice", "version": 3}
    assert s3_bucket not in answer.get_data(as_text=True)
    assert "models/" not in answer.get_data(as_text=True)


def test_refused_upload_leaves_bucket_empty(s3_app, s3_endpoint, s3_bucket):
    response = s3_app.test_client().post(
        "/api/chatbots",
        data={"name": "victim", "public": "true", "export": (io.BytesIO(b"\x00\x01"), "x.bin")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 415
    assert bucket_keys(s3_endpoint, s3_bucket) == []


def test_failed_build_leaves_bucket_empty(s3_app, s3_endpoint, s3_bucket, export_zip):
    client = s3_app.test_client()
    with export_zip.open("rb") as export:
        response = client.post(
            "/api/chatbots",
            data={
                "name": "ghost",
                "public": "true",
                "me": "Nobody Here",
                "export": (export, "export.zip"),
            },
            content_type="multipart/form-data",
        )
    assert response.status_code == 202
    failed = wait_for_phase(client, "ghost", {"Failed", "Ready"}, timeout=120)
    assert failed["phase"] == "Failed" and "Nobody Here" not in failed["message"]
    owner = {"Authorization": f"Bearer {response.get_json()['owner_token']}"}
    assert "Nobody Here" in client.get("/api/chatbots/ghost", headers=owner).json["message"]
    # Only the owner's copy of the reason is left.
    assert [key for key in bucket_keys(s3_endpoint, s3_bucket) if "failure" not in key] == []

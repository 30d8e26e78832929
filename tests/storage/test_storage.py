"""Storage behaves the same on local files and on S3 (moto server)."""

from __future__ import annotations

import io

import pytest

from mimical.config import Settings
from mimical.errors import InputError, NotFoundError, TooLargeError, UnavailableError
from mimical.storage import (
    FileStorage,
    S3Storage,
    chatbot_prefixes,
    complete_model_versions,
    model_versions,
    next_version,
    object_location,
    open_storage,
    progress_key,
)


@pytest.fixture(params=["file", "s3"])
def storage(request, tmp_path):
    if request.param == "file":
        return open_storage((tmp_path / "root").as_uri(), Settings(home=tmp_path))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    settings = Settings(home=tmp_path, s3_endpoint_url=endpoint)
    return open_storage(f"s3://{bucket}/some/prefix", settings)


def test_put_get_list_delete(storage, tmp_path):
    storage.put_bytes("models/alice/1/saved_model.pb", b"model")
    storage.put_bytes("models/alice/1/variables/variables.index", b"index")
    storage.put_bytes("models/alicia/1/saved_model.pb", b"other")
    assert storage.list("models/alice/") == [
        "models/alice/1/saved_model.pb",
        "models/alice/1/variables/variables.index",
    ]
    assert storage.exists("models/alice/1/saved_model.pb")
    assert not storage.exists("models/alice/2/saved_model.pb")
    copy = storage.get_file("models/alice/1/saved_model.pb", tmp_path / "out" / "m.pb")
    assert copy.read_bytes() == b"model"
    assert storage.delete_prefix("models/alice/") == 2
    assert storage.list("models/") == ["models/alicia/1/saved_model.pb"]


def test_tree_round_trip(storage, tmp_path):
    source = tmp_path / "export"
    (source / "variables").mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"pb")
    (source / "variables" / "v.data").write_bytes(b"data")
    assert storage.put_tree("models/bob/3/", source) == 2
    assert storage.get_tree("models/bob/3/", tmp_path / "back") == 2
    assert (tmp_path / "back" / "variables" / "v.data").read_bytes() == b"data"


def test_size_cap_stores_nothing(storage):
    with pytest.raises(TooLargeError):
        storage.put_stream("uploads/x/1/big.zip", io.BytesIO(b"x" * 5000), max_bytes=4096)
    assert storage.list("uploads/") == []


def test_multipart_upload_streams(storage):
    # Larger than one multipart chunk, so S3 takes it in parts.
    size = 17 * 1024 * 1024
    assert storage.put_stream("uploads/big/1/export.zip", io.BytesIO(b"\0" * size)) == size
    assert storage.exists("uploads/big/1/export.zip")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../b", "a//b", "a\\b", ""])
def test_unsafe_keys_refused(storage, key):
    with pytest.raises(InputError):
        storage.put_bytes(key, b"x")


def test_missing_object(storage, tmp_path):
    with pytest.raises(NotFoundError):
        storage.get_file("corpora/nobody/1.jsonl", tmp_path / "x")


def test_urls(tmp_path, s3_endpoint):
    settings = Settings(home=tmp_path, s3_endpoint_url=s3_endpoint)
    s3 = open_storage("s3://bucket/pre/fix/", settings)
    assert isinstance(s3, S3Storage)
    assert s3.url("models/a/1/") == "s3://bucket/pre/fix/models/a/1/"
    local = open_storage("", settings)
    assert isinstance(local, FileStorage)
    assert local.local_path() == (tmp_path / "storage").resolve()
    with pytest.raises(InputError):
        open_storage("ftp://x/y", settings)


def test_versions_come_from_what_is_stored(storage):
    assert next_version(storage, "alice") == 1
    storage.put_bytes("models/alice/1/saved_model.pb", b"graph")
    storage.put_bytes("models/alice/2/variables/variables.index", b"half-written")
    storage.put_bytes("models/alicia/7/saved_model.pb", b"other")
    storage.put_bytes("models/alice/notes.txt", b"not a version")
    assert model_versions(storage, "alice") == [1]  # version 2 has no saved_model.pb yet
    assert next_version(storage, "alice") == 3  # ...but its number is taken
    assert complete_model_versions(storage) == {"alice": [1], "alicia": [7]}


def test_every_prefix_of_a_chatbot_is_in_the_layout(storage):
    keys = [
        "uploads/alice/1/export.zip",
        "corpora/alice/1.jsonl",
        "models/alice/1/saved_model.pb",
        progress_key("alice", "alice-train-1"),
    ]
    for key in [*keys, "models/alicia/1/saved_model.pb"]:
        storage.put_bytes(key, b"x")
    assert sorted(k for p in chatbot_prefixes("alice") for k in storage.list(p)) == sorted(keys)


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("s3://bucket/uploads/a/1/export.zip", ("s3://bucket", "uploads/a/1/export.zip")),
        ("s3://bucket/x.jsonl", ("s3://bucket", "x.jsonl")),
    ],
)
def test_object_urls(url, location):
    assert object_location(url) == location


@pytest.mark.parametrize(
    "url", ["s3://bucket", "s3://bucket/", "s3://bucket/dir/", "s3:///key", "file:///x", "x"]
)
def test_object_urls_refused(url):
    with pytest.raises(InputError):
        object_location(url)


def test_keys_deleteobjects_refuses_are_an_error(s3_endpoint, s3_bucket):
    """DeleteObjects answers 200 with per-key `Errors` (AccessDenied under a bucket policy,
    say): the objects stay, so the caller must hear of it. moto never refuses a key, so
    the answer is botocore's stub of the real one."""
    from botocore.stub import Stubber

    settings = Settings(s3_endpoint_url=s3_endpoint)
    storage = open_storage(f"s3://{s3_bucket}/root", settings)
    listing = {"Contents": [{"Key": "root/uploads/a/1"}, {"Key": "root/uploads/a/2"}]}
    refused = {"Key": "root/uploads/a/2", "Code": "AccessDenied", "Message": "Access Denied"}
    with Stubber(storage.client) as stub:
        stub.add_response("list_objects_v2", {**listing, "IsTruncated": False})
        stub.add_response(
            "delete_objects", {"Deleted": [{"Key": "root/uploads/a/1"}], "Errors": [refused]}
        )
        with pytest.raises(UnavailableError, match="1 of 2 objects not deleted.*AccessDenied"):
            storage.delete_prefix("uploads/a/")

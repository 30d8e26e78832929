"""The model-mirror sidecar against a real S3 server (moto): TF Serving in the pod only
ever sees whole model versions, and only the ones the operator asked for.

Run: .venv/bin/pytest tests/deploy/test_model_mirror.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mimical.config import Settings
from mimical.kube.model_mirror import CONFIG_FILE, mirror_once, read_entries
from mimical.storage import model_prefix, open_storage


@pytest.fixture
def storage(s3_endpoint, s3_bucket):
    settings = Settings(storage_url=f"s3://{s3_bucket}/cluster", s3_endpoint_url=s3_endpoint)
    return open_storage(settings.storage_url, settings)


def upload_version(storage, tmp_path: Path, name: str, version: int) -> None:
    export = tmp_path / f"export-{name}-{version}"
    (export / "variables").mkdir(parents=True)
    (export / "saved_model.pb").write_bytes(b"graph %d" % version)
    (export / "variables" / "variables.index").write_bytes(b"index")
    storage.put_tree(model_prefix(name, version), export)


def served_config(directory: Path) -> dict[str, tuple[str, list[int]]]:
    """Parse models.config as TF Serving does (its ModelServerConfig text proto)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(
        (directory / CONFIG_FILE).read_text(), model_server_config_pb2.ModelServerConfig()
    )
    return {
        model.name: (model.base_path, list(model.model_version_policy.specific.versions))
        for model in config.model_config_list.config
    }


def local_versions(directory: Path) -> set[str]:
    return {
        f"{path.parent.name}/{path.name}"
        for path in (directory / "models").glob("*/*")
        if path.is_dir()
    }


def test_mirrors_wanted_versions_and_publishes_only_complete_ones(storage, tmp_path):
    models = tmp_path / "models-cache"
    upload_version(storage, tmp_path, "alice", 1)
    upload_version(storage, tmp_path, "bob", 3)

    # bob 4 is wanted but not uploaded yet: not published, nothing half-there.
    served = mirror_once(storage, {"alice": [1], "bob": [4]}, models, {})
    assert served == {"alice": [1]}
    assert (models / "models/alice/1/variables/variables.index").read_bytes() == b"index"
    assert served_config(models) == {"alice": (f"{models}/models/alice", [1])}
    assert not any((models / ".staging").iterdir())

    # A retrain: alice 2 loads beside alice 1, which goes once the operator drops it
    # (the new one answers); its files stay one more pass for TF Serving.
    upload_version(storage, tmp_path, "alice", 2)
    served = mirror_once(storage, {"alice": [1, 2]}, models, served)
    assert served == {"alice": [1, 2]}
    assert served_config(models) == {"alice": (f"{models}/models/alice", [1, 2])}
    served = mirror_once(storage, {"alice": [2]}, models, served)
    assert served == {"alice": [2]}
    assert local_versions(models) == {"alice/1", "alice/2"}
    served = mirror_once(storage, {"alice": [2]}, models, served)
    assert local_versions(models) == {"alice/2"}

    # The chatbot is deleted: unpublished at once, files gone a pass later.
    served = mirror_once(storage, {}, models, served)
    assert served == {} and served_config(models) == {}
    mirror_once(storage, {}, models, served)
    assert local_versions(models) == set()


def test_a_new_version_not_yet_uploaded_keeps_the_old_one_serving(storage, tmp_path):
    models = tmp_path / "models-cache"
    upload_version(storage, tmp_path, "carol", 1)
    served = mirror_once(storage, {"carol": [1]}, models, {})
    served = mirror_once(storage, {"carol": [2]}, models, served)
    assert served == {"carol": [1]}
    assert served_config(models) == {"carol": (f"{models}/models/carol", [1])}


def test_a_restarted_pod_serves_the_answering_version_beside_one_that_never_arrives(
    storage, tmp_path
):
    """A fresh pod (nothing mirrored, no previous pass) while a retrain's version loads:
    the version that answers is published at once, whatever becomes of the new one."""
    models = tmp_path / "fresh-pod"
    upload_version(storage, tmp_path, "fay", 1)
    served = mirror_once(storage, {"fay": [1, 2]}, models, {})
    assert served == {"fay": [1]}
    assert served_config(models) == {"fay": (f"{models}/models/fay", [1])}


def test_entries_file_missing_or_foreign_means_no_models(tmp_path):
    assert read_entries(tmp_path / "absent.json") == {}
    (tmp_path / "models.json").write_text("not json")
    assert read_entries(tmp_path / "models.json") == {}
    (tmp_path / "models.json").write_text(json.dumps({"dave": [7, 8]}))
    assert read_entries(tmp_path / "models.json") == {"dave": [7, 8]}
    # What the previous release wrote (one version per name), read during an upgrade.
    (tmp_path / "models.json").write_text(json.dumps({"dave": 7}))
    assert read_entries(tmp_path / "models.json") == {"dave": [7]}


def run_mirror(tmp_path: Path, storage_url: str, endpoint: str, *args: str):
    env = {
        **os.environ,
        "MIMICAL_STORAGE_URL": storage_url,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "MIMICAL_MIRROR_ENTRIES": str(tmp_path / "models.json"),
        "MIMICAL_MIRROR_DIR": str(tmp_path / "models-cache"),
    }
    return subprocess.run(
        [sys.executable, "-m", "mimical.kube.model_mirror", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_command_runs_one_pass_like_the_init_container(storage, s3_endpoint, s3_bucket, tmp_path):
    upload_version(storage, tmp_path, "erin", 5)
    (tmp_path / "models.json").write_text(json.dumps({"erin": [5]}))
    result = run_mirror(tmp_path, f"s3://{s3_bucket}/cluster", s3_endpoint, "--once")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models-cache/models/erin/5/saved_model.pb").exists()
    assert served_config(tmp_path / "models-cache")["erin"][1] == [5]


def test_command_reports_bad_storage_in_one_line(tmp_path, s3_endpoint):
    result = run_mirror(tmp_path, "ftp://nowhere/models", s3_endpoint, "--once")
    assert result.returncode == 2
    assert result.stderr.startswith("model-mirror: error:")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_trained_model_answers_over_grpc_from_the_mirror(storage, tiny_model, tmp_path):
    """Training upload -> mirror -> a TF Serving-compatible gRPC server -> a reply."""
    from mimical.serving.client import ModelClient
    from mimical.serving.server import ModelServer

    # What the training Job does: the export, whole, under models/NAME/VERSION/.
    storage.put_tree(model_prefix(tiny_model.name, tiny_model.version), tiny_model.export_dir)
    models = tmp_path / "models-cache"
    served = mirror_once(storage, {tiny_model.name: [tiny_model.version]}, models, {})
    assert served == {tiny_model.name: [tiny_model.version]}
    base_path, versions = served_config(models)[tiny_model.name]
    assert versions == [tiny_model.version]

    with ModelServer(str(Path(base_path).parent)).start() as server:
        client = ModelClient(server.target)
        try:
            reply = client.reply(tiny_model.name, "hello there", seed=1, timeout=60)
        finally:
            client.close()
    assert isinstance(reply, str)


def test_command_reports_a_bad_interval_in_one_line(tmp_path, s3_endpoint):
    """The sidecar reads its flags' defaults from `Settings`, which refuses a bad value."""
    result = subprocess.run(
        [sys.executable, "-m", "mimical.kube.model_mirror", "--once"],
        capture_output=True,
        text=True,
        env={**os.environ, "MIMICAL_MIRROR_INTERVAL": "often"},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == "model-mirror: error: MIMICAL_MIRROR_INTERVAL='often' is not a number\n"

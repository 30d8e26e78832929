"""The training Job's runner against S3 (moto): real import, real (tiny) training, upload."""

from __future__ import annotations

import shutil

import pytest

from mimical.build import read_failure
from mimical.config import Settings
from mimical.kube import artifacts
from mimical.kube.training_job import TrainingRequest, main, run
from mimical.storage import model_versions, next_version, progress_key


@pytest.fixture
def export_zip(sample_export, tmp_path):
    """A small Messenger export zipped, as people download it."""
    return shutil.make_archive(str(tmp_path / "messenger"), "zip", sample_export("messenger"))


def job_env(settings, source: str) -> dict[str, str]:
    return {
        "MIMICAL_CHATBOT": "alice",
        "MIMICAL_SOURCE": source,
        "MIMICAL_TRAINING_JOB": "alice-train-1",
        "MIMICAL_TRAINING_EPOCHS": "1",
        "MIMICAL_STORAGE_URL": settings.storage_url,
        "MIMICAL_S3_ENDPOINT_URL": settings.s3_endpoint_url,
    }


@pytest.mark.slow
def test_export_on_s3_becomes_a_versioned_model(operator_settings, storage, export_zip):
    from mimical.model.train import tiny_config

    storage.put_file("uploads/alice/1/messenger.zip", export_zip)
    source = storage.url("uploads/alice/1/messenger.zip")
    request = TrainingRequest.from_settings(Settings.from_env(job_env(operator_settings, source)))
    assert (request.epochs, request.job_name) == (1, "alice-train-1")

    result = run(request, operator_settings, config=tiny_config())

    assert result.version == 1 and result.import_stats["pairs"] > 0
    assert model_versions(storage, "alice") == [1]
    assert storage.exists("corpora/alice/1.jsonl")
    assert artifacts.model_metrics(storage, "alice", 1)  # the training metrics travel along
    progress = artifacts.read_json(storage, progress_key("alice", "alice-train-1"))
    assert (progress["step"], progress["percent"], progress["imported"]) == ("done", 100, True)
    assert next_version(storage, "alice") == 2
    # The raw export does not outlive its import (as in local mode).
    assert storage.list("uploads/alice/") == []


def test_bad_export_fails_with_its_reason_and_stores_no_model(
    operator_settings, storage, tmp_path, capsys
):
    not_an_export = tmp_path / "export.zip"
    not_an_export.write_bytes(b"this is not a zip file")
    storage.put_file("uploads/alice/1/export.zip", not_an_export)
    env = job_env(operator_settings, storage.url("uploads/alice/1/export.zip"))

    assert main(env) == 2

    message = capsys.readouterr().err
    generic = "build failed: the export could not be used (the owner token shows why)"
    # Logs, the progress file (→ status) and the termination message name nothing.
    assert message == f"mimical training: error: {generic}\n"
    progress = artifacts.read_json(storage, progress_key("alice", "alice-train-1"))
    assert progress["step"] == "failed" and progress["imported"] is False
    assert progress["message"] == generic
    # The owner's detail, without the scratch path the Job downloaded to.
    assert read_failure(storage, "alice").startswith("export.zip: not a readable zip file")
    assert storage.list("models/alice/") == []


def test_missing_source_is_a_clear_error(operator_settings, storage, capsys):
    env = job_env(operator_settings, storage.url("uploads/alice/9/missing.zip"))
    assert main(env) == 2
    assert "build failed: the export was not found" in capsys.readouterr().err
    assert "missing.zip: no such object" in read_failure(storage, "alice")
    assert main({}) == 2
    assert "MIMICAL_CHATBOT and MIMICAL_SOURCE not set" in capsys.readouterr().err


def test_a_bad_training_budget_is_a_clear_error(operator_settings, capsys):
    env = job_env(operator_settings, "s3://bucket/uploads/alice/1/export.zip")
    assert main({**env, "MIMICAL_TRAINING_EPOCHS": "many"}) == 2
    error = capsys.readouterr().err
    assert (
        error == "mimical training: error: MIMICAL_TRAINING_EPOCHS='many' is not a whole number\n"
    )


def test_a_job_without_its_chatbot_is_a_clear_error(operator_settings, capsys):
    env = job_env(operator_settings, "s3://bucket/uploads/alice/1/export.zip")
    del env["MIMICAL_CHATBOT"]
    assert main(env) == 2
    assert "training job: MIMICAL_CHATBOT not set" in capsys.readouterr().err

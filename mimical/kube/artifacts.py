"""What a training Job leaves in storage, and how the operator reads it back.

Besides the storage layout of `mimical.storage` (uploads/, corpora/, models/), a
training Job writes its progress to `training/NAME/JOB.json`:

    {"step": "importing" | "training" | "uploading" | "done" | "failed",
     "percent": 0-100, "message": "...", "imported": bool, "updated": ISO time}

The operator copies it into `status.progress` and, when the Job fails, uses it for
the reason. A chatbot's finalizer deletes every prefix of `chatbot_prefixes`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mimical.errors import NotFoundError
from mimical.storage import SAVED_MODEL_FILE, Storage, model_prefix, stored_model_files
from mimical.storage import chatbot_prefixes as layout_prefixes

METRICS_FILE = "assets.extra/metrics.json"


def progress_key(chatbot: str, job_name: str) -> str:
    return f"training/{chatbot}/{job_name}.json"


def chatbot_prefixes(chatbot: str) -> list[str]:
    """Every storage prefix holding this chatbot's data (deleted with it)."""
    return [*layout_prefixes(chatbot), f"training/{chatbot}/"]


def read_json(storage: Storage, key: str) -> dict | None:
    """The JSON object at `key`, or None when it is missing or not JSON."""
    with tempfile.TemporaryDirectory(prefix="mimical-") as scratch:
        try:
            path = storage.get_file(key, Path(scratch) / "object.json")
        except NotFoundError:
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
    return value if isinstance(value, dict) else None


def write_json(storage: Storage, key: str, value: dict) -> None:
    storage.put_bytes(key, json.dumps(value, sort_keys=True).encode())


def model_versions(storage: Storage, chatbot: str) -> list[int]:
    """Complete model versions (those with a saved_model.pb), oldest first."""
    return sorted(
        {v for v, path in stored_model_files(storage, chatbot) if path == SAVED_MODEL_FILE}
    )


def model_metrics(storage: Storage, chatbot: str, version: int) -> dict:
    """The metrics the training stored next to the model (empty if it stored none)."""
    return read_json(storage, f"{model_prefix(chatbot, version)}{METRICS_FILE}") or {}

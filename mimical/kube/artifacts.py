"""Reading and writing the small JSON objects a training Job leaves in storage.

The layout (`training/NAME/JOB.json` progress, model versions, every prefix of a
chatbot) is `mimical.storage`'s; the progress file's fields are described in
`mimical.kube.training_job`. The operator copies the progress into `status.progress`
and, when the Job fails, uses it for the reason.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mimical.errors import NotFoundError
from mimical.model.export import EXTRA_DIR, METRICS_FILE
from mimical.storage import Storage, model_prefix


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


def model_metrics(storage: Storage, chatbot: str, version: int) -> dict:
    """The metrics the training stored next to the model (empty if it stored none)."""
    return read_json(storage, f"{model_prefix(chatbot, version)}{EXTRA_DIR}/{METRICS_FILE}") or {}

"""What one training Job runs: fetch the export, import, train, upload a new model version.

    python training_image/entrypoint.py          # in the training image, env set by the Job
    python -m mimical.kube.training_job          # the same, from a checkout

The operator sets the environment (see `mimical.kube.manifests.training_job`):
MIMICAL_CHATBOT, MIMICAL_SOURCE (s3://bucket/key of an export file or zip, or of a
corpus .jsonl), MIMICAL_TRAINING_JOB, MIMICAL_TRAINING_MAX_MINUTES,
MIMICAL_TRAINING_EPOCHS, MIMICAL_ME (the persona's name in the export, optional),
MIMICAL_STORAGE_URL and the S3 credentials.

Results go to storage (layout in `mimical.storage`): the corpus to
`corpora/NAME/VERSION.jsonl`, the SavedModel to `models/NAME/VERSION/` with
`saved_model.pb` written last (a version counts once that file exists), and
progress to `training/NAME/JOB.json` (see `mimical.kube.artifacts`). VERSION is one
more than the highest version already stored. A bad export exits with status 2 and
its one-line reason in the progress file and the pod's termination message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mimical.config import Settings
from mimical.errors import InputError, MimicalError
from mimical.kube import artifacts
from mimical.kube.status import now_iso
from mimical.storage import Storage, corpus_key, model_prefix, open_storage, stored_model_files

logger = logging.getLogger(__name__)

TERMINATION_LOG = Path("/dev/termination-log")
# Share of the progress bar each step ends at.
FETCHED, IMPORTED, TRAINED, UPLOADED = 5, 20, 90, 100


@dataclass(frozen=True)
class TrainingRequest:
    chatbot: str
    source: str
    job_name: str
    max_minutes: float | None = None
    epochs: int | None = None
    me: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> TrainingRequest:
        env = os.environ if env is None else env
        missing = [key for key in ("MIMICAL_CHATBOT", "MIMICAL_SOURCE") if not env.get(key)]
        if missing:
            raise InputError(f"training job: {' and '.join(missing)} not set")
        chatbot = env["MIMICAL_CHATBOT"]
        return cls(
            chatbot=chatbot,
            source=env["MIMICAL_SOURCE"],
            job_name=env.get("MIMICAL_TRAINING_JOB") or f"{chatbot}-train",
            max_minutes=float(env["MIMICAL_TRAINING_MAX_MINUTES"])
            if env.get("MIMICAL_TRAINING_MAX_MINUTES")
            else None,
            epochs=int(env["MIMICAL_TRAINING_EPOCHS"])
            if env.get("MIMICAL_TRAINING_EPOCHS")
            else None,
            me=env.get("MIMICAL_ME") or None,
        )


class ProgressFile:
    """Writes `training/NAME/JOB.json` for the operator to copy into status.progress."""

    MIN_INTERVAL_SECONDS = 5.0

    def __init__(self, storage: Storage, request: TrainingRequest):
        self.storage = storage
        self.key = artifacts.progress_key(request.chatbot, request.job_name)
        self.imported = False
        self.percent = 0
        self._last: tuple | None = None

    def report(self, step: str, percent: float, message: str = "") -> None:
        """Record progress; within one step, at most every `MIN_INTERVAL_SECONDS`."""
        self.percent = int(percent)
        now = time.monotonic()
        if self._last is not None:
            last_step, last_time = self._last
            if last_step == step and now - last_time < self.MIN_INTERVAL_SECONDS:
                return
        self._last = (step, now)
        logger.info("%s %d%% %s", step, int(percent), message)
        value = {"step": step, "percent": int(percent), "message": message,
                 "imported": self.imported, "updated": now_iso()}  # fmt: skip
        artifacts.write_json(self.storage, self.key, value)


def fetch_source(source: str, directory: Path, settings: Settings) -> Path:
    """Download the s3:// object `source` into `directory`; return its local path."""
    parsed = urlparse(source)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key or key.endswith("/"):
        raise InputError(f"{source}: expected s3://BUCKET/KEY of an export or corpus")
    bucket = open_storage(f"s3://{parsed.netloc}", settings)
    return bucket.get_file(key, directory / Path(key).name)


def next_version(storage: Storage, chatbot: str) -> int:
    """Versions only grow: one more than the highest stored (complete or not)."""
    return max((version for version, _ in stored_model_files(storage, chatbot)), default=0) + 1


def _scaled(report: Callable, step: str, start: float, end: float):
    """A callback mapping a fraction (0..1) of one step onto the overall percent range."""

    def callback(fraction: float, message: str = "") -> None:
        report(step, start + (end - start) * max(0.0, min(1.0, fraction)), message)

    return callback


def run(request: TrainingRequest, settings: Settings, progress: ProgressFile | None = None,
        **train_options) -> dict:  # fmt: skip
    """Fetch → import → train → upload; return what was stored. Raises `MimicalError`."""
    from mimical.corpus.importer import import_exports
    from mimical.model.train import train_persona

    storage = open_storage(settings.storage_url, settings)
    progress = progress or ProgressFile(storage, request)
    with tempfile.TemporaryDirectory(prefix="mimical-train-") as scratch:
        scratch = Path(scratch)
        progress.report("fetching", 0, f"downloading {request.source}")
        source = fetch_source(request.source, scratch / "source", settings)
        if source.suffix == ".jsonl":
            corpus, stats = source, {}
        else:
            importing = _scaled(progress.report, "importing", FETCHED, IMPORTED)
            corpus = scratch / "corpus.jsonl"
            stats = import_exports(
                [source],
                corpus,
                me=request.me,
                progress=lambda done, total: importing(done / max(total, 1), f"{done}/{total}"),
            )
            source.unlink()  # the raw export is no longer needed on this disk
        progress.imported = True
        version = next_version(storage, request.chatbot)
        storage.put_file(corpus_key(request.chatbot, version), corpus)

        training = _scaled(progress.report, "training", IMPORTED, TRAINED)
        result = train_persona(
            corpus, scratch / "models", request.chatbot,
            max_minutes=request.max_minutes, epochs=request.epochs,
            on_progress=lambda p: training(p.get("fraction", 0.0), p.get("phase", "")),
            **train_options,
        )  # fmt: skip
        progress.report("uploading", TRAINED, f"version {version}")
        # put_tree writes saved_model.pb last, so the version appears whole.
        files = storage.put_tree(model_prefix(request.chatbot, version), result.export_dir)
        progress.report("done", UPLOADED, f"version {version} uploaded")
    return {"version": version, "files": files, "import": stats, "metrics": result.metrics}


def main(env: dict[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings.from_env(env)
    progress = None
    try:
        request = TrainingRequest.from_env(env)
        progress = ProgressFile(open_storage(settings.storage_url, settings), request)
        result = run(request, settings, progress)
    except MimicalError as error:
        fail(progress, str(error))
        return 2
    except Exception as error:
        logger.exception("training failed")
        fail(progress, f"unexpected error: {error!r}")
        return 1
    print(f"mimical training: {request.chatbot} version {result['version']} uploaded")
    return 0


def fail(progress: ProgressFile | None, message: str) -> None:
    """Leave the reason where the operator and `kubectl describe pod` find it."""
    print(f"mimical training: error: {message}", file=sys.stderr)
    with contextlib.suppress(OSError):  # not in a pod
        TERMINATION_LOG.write_text(message[:4000])
    if progress is not None:
        try:
            progress.report("failed", progress.percent, message)
        except MimicalError as error:
            logger.warning("could not record the failure in storage: %s", error)


if __name__ == "__main__":
    sys.exit(main())

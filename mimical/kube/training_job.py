"""What one training Job runs: the build pipeline (`mimical.build`) for one new version.

    python training_image/entrypoint.py          # in the training image, env set by the Job
    python -m mimical.kube.training_job          # the same, from a checkout

The operator sets the environment (see `mimical.kube.manifests.training_job`), read
like every process's through `Settings.from_env`: MIMICAL_CHATBOT, MIMICAL_SOURCE
(s3://bucket/key of an export file or zip, or of a corpus .jsonl), MIMICAL_TRAINING_JOB,
MIMICAL_TRAINING_MAX_MINUTES, MIMICAL_TRAINING_EPOCHS, MIMICAL_ME (the persona's name in
the export, optional), MIMICAL_STORAGE_URL and the S3 credentials.

Results go to storage (layout in `mimical.storage`): the corpus to
`corpora/NAME/VERSION.jsonl`, the SavedModel to `models/NAME/VERSION/` with
`saved_model.pb` written last (a version counts once that file exists), and
progress to `training/NAME/JOB.json`:

    {"step": "importing" | "training" | "deploying" | "done" | "failed",  (`Step`)
     "percent": 0-100, "message": "...", "imported": bool, "updated": ISO time}

which the operator copies into `status.progress`. VERSION is one more than the
highest version already stored. A bad export exits with status 2 and its one-line
reason in the progress file and the pod's termination message: the generic
`mimical.build.public_failure` line, since both reach the Chatbot's status and Events;
the full reason, which may name the owner's chat partners, is stored for the owner
alone (`mimical.storage.failure_key`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mimical.build import BuildResult, build_chatbot, public_failure
from mimical.chatbot import Phase, Step, step_of
from mimical.config import Settings
from mimical.errors import InputError, MimicalError
from mimical.kube import artifacts
from mimical.kube.manifests import disposable_upload
from mimical.kube.status import now_iso
from mimical.storage import (
    Storage,
    next_version,
    object_location,
    open_storage,
    progress_key,
)

logger = logging.getLogger(__name__)

TERMINATION_LOG = Path("/dev/termination-log")


@dataclass(frozen=True)
class TrainingRequest:
    chatbot: str
    source: str
    job_name: str
    max_minutes: float | None = None
    epochs: int | None = None
    me: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingRequest:
        """The request the operator put in the Job's environment (`Settings.chatbot`,
        `source`, `training_job`, `training_max_minutes`, `training_epochs`, `me`)."""
        given = {"MIMICAL_CHATBOT": settings.chatbot, "MIMICAL_SOURCE": settings.source}
        missing = [variable for variable, value in given.items() if not value]
        if missing:
            raise InputError(f"training job: {' and '.join(missing)} not set")
        return cls(
            chatbot=settings.chatbot,
            source=settings.source,
            job_name=settings.training_job or f"{settings.chatbot}-train",
            max_minutes=settings.training_max_minutes,
            epochs=settings.training_epochs,
            me=settings.me or None,
        )


class ProgressFile:
    """Writes `training/NAME/JOB.json` for the operator to copy into status.progress."""

    MIN_INTERVAL_SECONDS = 5.0

    def __init__(self, storage: Storage, request: TrainingRequest):
        self.storage = storage
        self.key = progress_key(request.chatbot, request.job_name)
        self.imported = False
        self.percent = 0
        self._last: tuple | None = None

    def __call__(self, phase: Phase, fraction: float, message: str) -> None:
        """The build pipeline's progress callback."""
        self.imported = self.imported or phase != Phase.IMPORTING
        self.report(step_of(phase), 100 * fraction, message)

    def report(self, step: Step, percent: float, message: str = "") -> None:
        """Record progress; within one step, at most every `MIN_INTERVAL_SECONDS`."""
        self.percent = int(percent)
        now = time.monotonic()
        if self._last is not None:
            last_step, last_time = self._last
            if last_step == step and now - last_time < self.MIN_INTERVAL_SECONDS:
                return
        self._last = (step, now)
        logger.info("%s %d%% %s", step, int(percent), message)
        value = {
            "step": step,
            "percent": int(percent),
            "message": message,
            "imported": self.imported,
            "updated": now_iso(),
        }
        artifacts.write_json(self.storage, self.key, value)


def run(
    request: TrainingRequest,
    settings: Settings,
    progress: ProgressFile | None = None,
    **train_options,
) -> BuildResult:
    """Build the next version of the chatbot from `request.source`. Raises `MimicalError`."""
    storage = open_storage(settings.storage_url, settings)
    progress = progress or ProgressFile(storage, request)
    bucket, key = object_location(request.source)
    result = build_chatbot(
        storage,
        request.chatbot,
        key,
        next_version(storage, request.chatbot),
        progress,
        source_storage=open_storage(bucket, settings),
        me=request.me,
        train_options={"max_minutes": request.max_minutes, "epochs": request.epochs}
        | train_options,
    )
    if disposable_upload(request.chatbot, request.source, settings):
        # The raw export is not kept once its corpus and model are stored (as in local
        # mode). Only after success: the Job's retry of a failed pod needs it again; the
        # operator deletes it once the Job has failed for good.
        storage.delete_prefix(request.source.removeprefix(storage.root.rstrip("/") + "/"))
    progress.report(Step.DONE, 100, f"version {result.version} stored")
    return result


def main(env: dict[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    progress = None
    try:
        settings = Settings.from_env(env)
        request = TrainingRequest.from_settings(settings)
        progress = ProgressFile(open_storage(settings.storage_url, settings), request)
        result = run(request, settings, progress)
    except MimicalError as error:
        # Once the build runs, its reason may name the owner's chat partners: it is in
        # storage for the owner (`failure_key`); status, Events and logs get a generic line.
        fail(progress, public_failure(error) if progress is not None else str(error))
        return 2
    except Exception as error:
        logger.exception("training failed")
        fail(progress, f"unexpected error: {error!r}")
        return 1
    print(f"mimical training: {request.chatbot} version {result.version} stored")
    return 0


def fail(progress: ProgressFile | None, message: str) -> None:
    """Leave the reason where the operator and `kubectl describe pod` find it."""
    print(f"mimical training: error: {message}", file=sys.stderr)
    with contextlib.suppress(OSError):  # not in a pod
        TERMINATION_LOG.write_text(message[:4000])
    if progress is not None:
        try:
            progress.report(Step.FAILED, progress.percent, message)
        except MimicalError as error:
            logger.warning("could not record the failure in storage: %s", error)


if __name__ == "__main__":
    sys.exit(main())

"""kopf handlers: keep each Chatbot trained, served and, when deleted, cleaned up.

    create / spec change / operator restart → `start_training`: one Job per generation
    Job finished (watched via its labels)    → `job_changed`: list the version or mark Failed
    while Training (timer)                   → `poll_progress`: copy the Job's progress, then
                                               ask the model server until the version answers
    deletion (finalizer)                     → `clean_up`: serving entry, then S3 prefixes
                                               once its training pods have stopped
    start, then every minute                 → `rebuild_serving_forever`: the served list

Every handler is safe to run twice: Job names are deterministic, the status says what
is already done, and deletions ignore what is already gone. Handlers are sync (the
`kubernetes` client and boto3 block); kopf runs them in its thread pool. Run them with
`python operator/main.py` (see `mimical.kube.operator`).
"""

from __future__ import annotations

import asyncio
import contextlib

import kopf

from mimical.chatbot import Phase, Step
from mimical.errors import InputError, NotFoundError, UnavailableError
from mimical.kube import GROUP, PLURAL, VERSION, artifacts
from mimical.kube.manifests import (
    LABEL_CHATBOT,
    LABEL_GENERATION,
    InvalidSpecError,
    check_chatbot,
    disposable_upload,
    secret_keys,
    training_job,
    training_job_name,
)
from mimical.kube.status import (
    awaiting_model_server,
    load_timed_out,
    loading_overdue,
    model_served,
    now_iso,
    serving_versions,
    spec_invalid,
    still_loading,
    training_failed,
    training_started,
    training_succeeded,
    waiting_for_source,
)
from mimical.storage import chatbot_prefixes, model_prefix, model_versions, progress_key

CHATBOTS = (GROUP, VERSION, PLURAL)
FINALIZER = f"{GROUP}/cleanup"
# How often a Training chatbot's status.progress is refreshed from its Job's progress file.
PROGRESS_INTERVAL_SECONDS = 15.0
# The served-model list is rebuilt from the Chatbots every this many progress intervals.
SERVING_REBUILD_INTERVALS = 4
# Retry delay when S3 or the API server is briefly unreachable.
RETRY_DELAY_SECONDS = 10
# How often a deleted chatbot's finalizer checks that its training pods are gone.
POD_GONE_RETRY_SECONDS = 5
# Deadline of one GetModelStatus call (the progress timer asks again on its next tick).
MODEL_STATUS_TIMEOUT_SECONDS = 5.0


def _temporary(function, *args, **kwargs):
    """Call `function`; an unreachable backend becomes a kopf retry, not a failure."""
    try:
        return function(*args, **kwargs)
    except UnavailableError as error:
        raise kopf.TemporaryError(str(error), delay=RETRY_DELAY_SECONDS) from None


def start_training(body, meta, spec, status, name, patch, memo: kopf.Memo, logger, **_) -> None:
    """Make sure the current generation has its training Job; record it in status."""
    generation = int(meta.get("generation") or 1)
    done = (Phase.READY, Phase.FAILED, Phase.PENDING)
    if status.get("observedGeneration") == generation and (
        status.get("phase") in done or awaiting_model_server(status)
    ):
        # Trained and waiting to answer counts as done too: its Job may be gone by now
        # (ttlSecondsAfterFinished), and must not be made again.
        logger.debug("generation %s is already %s", generation, status.get("phase"))
        return
    if not spec.get("source"):
        patch.status.update(waiting_for_source(dict(status), generation))
        return
    job_name = training_job_name(name, generation)
    try:
        created = create_training_job(body, name, generation, dict(spec), memo)
    except InvalidSpecError as error:
        patch.status.update(spec_invalid(dict(status), generation, str(error)))
        kopf.warn(body, reason="InvalidSpec", message=str(error))
        return
    if generation > 1:
        # A spec change makes a still-running Job of an older generation pointless.
        stale = _temporary(memo.cluster.delete_jobs, name, keep=job_name)
        if stale:
            logger.info("stopped stale training Jobs %s", ", ".join(stale))
    if not (status.get("phase") == Phase.TRAINING and status.get("trainingJob") == job_name):
        patch.status.update(training_started(dict(status), generation, job_name))
    if created:
        kopf.event(body, type="Normal", reason="Training", message=f"created Job {job_name}")


def create_training_job(body, name: str, generation: int, spec: dict, memo: kopf.Memo) -> bool:
    """Check the spec, then create this generation's Job (False: it exists already)."""
    check_chatbot(name, spec, memo.settings)
    manifest = training_job(name, generation, spec, memo.settings)
    kopf.adopt(manifest, owner=body)
    return _temporary(memo.cluster.create_job, manifest)


def job_outcome(job: dict) -> tuple[str, str, str] | None:
    """("Complete" | "Failed", reason, message) of a finished Job; None while it runs."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            reason = condition.get("reason") or condition["type"]
            return condition["type"], reason, condition.get("message") or ""
    return None


def job_changed(body, event, memo: kopf.Memo, logger, **_) -> None:
    """A training Job changed: when it finished, serve its model or record the failure."""
    if event.get("type") != "DELETED":
        record_outcome(dict(body), memo, logger)


def record_outcome(body: dict, memo: kopf.Memo, logger) -> None:
    """If the Job finished and its Chatbot still waits for it, record what came out."""
    if (outcome := job_outcome(body)) is None:
        return
    labels = body.get("metadata", {}).get("labels", {})
    name, job_name = labels[LABEL_CHATBOT], body["metadata"]["name"]
    generation = int(labels.get(LABEL_GENERATION) or 0)
    chatbot = _temporary(memo.cluster.get_chatbot, name)
    if chatbot is None or chatbot["metadata"].get("deletionTimestamp"):
        return
    current = chatbot.get("status") or {}
    if current.get("trainingJob") != job_name or current.get("phase") != Phase.TRAINING:
        return  # a stale Job, or this outcome is already recorded
    if awaiting_model_server(current):
        return  # its version is recorded and listed; the progress timer watches it load
    kind, reason, message = outcome
    storage = memo.storage
    if kind == "Complete":
        versions = _temporary(model_versions, storage, name)
        if not versions:
            kind, reason = "Failed", "NoModel"
            message = f"Job {job_name} succeeded but left no model under {model_prefix(name)}"
    if kind == "Complete":
        version = versions[-1]
        metrics = _temporary(artifacts.model_metrics, storage, name, version)
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)}
        uri = storage.url(model_prefix(name, version)).rstrip("/")
        new_status = training_succeeded(
            current, generation, version, uri, memo.settings.serving_endpoint, scalars
        )
        settle_serving(name, current, new_status, memo)
        message = f"version {version} trained ({uri}); waiting for the model server"
        kopf.event(chatbot, type="Normal", reason="Trained", message=message)
        logger.info("chatbot %s: version %s listed for serving", name, version)
        return
    source = (chatbot.get("spec") or {}).get("source") or ""
    if disposable_upload(name, source, memo.settings):
        # The Job's pods are done retrying: its raw export goes, as after a success.
        _temporary(storage.delete_prefix, source.removeprefix(storage.root.rstrip("/") + "/"))
    progress = _temporary(artifacts.read_json, storage, progress_key(name, job_name))
    progress = progress or {}
    if progress.get("message") and progress.get("step") == Step.FAILED:
        message = f"{message}: {progress['message']}" if message else progress["message"]
    imported = progress.get("imported") if "imported" in progress else None
    new_status = training_failed(current, generation, reason, message, imported=imported)
    _temporary(memo.cluster.patch_chatbot_status, name, new_status)
    kopf.warn(chatbot, reason="TrainingFailed", message=f"Job {job_name}: {reason}: {message}")


def is_training(status, **_) -> bool:
    return status.get("phase") == Phase.TRAINING


def poll_progress(body, name, meta, spec, status, patch, memo: kopf.Memo, logger, **_) -> None:
    """Follow the running Job: record its outcome, or copy its progress file into status;
    once the outcome is recorded, ask the model server whether the version answers.

    Job events are not retried, so a Job that ended while S3 was down (its outcome
    could not be read then, its pod could not write "failed") is recorded here, on a
    later tick. A Job that is gone while its chatbot still trains (deleted by hand, or
    lost with its etcd write) is created again, as a restarted operator would.
    """
    if awaiting_model_server(status):
        check_served(body, name, dict(status), patch, memo, logger)
        return
    job_name = status.get("trainingJob")
    if not job_name:
        return
    job = _temporary(memo.cluster.get_job, job_name)
    generation = int(meta.get("generation") or 1)
    if job is None:
        if job_name == training_job_name(name, generation):
            with contextlib.suppress(InvalidSpecError):  # the spec handlers report it
                if create_training_job(body, name, generation, dict(spec), memo):
                    logger.warning("training Job %s was gone: created it again", job_name)
        return
    if job_outcome(job) is not None:
        record_outcome(job, memo, logger)
        return
    progress = _temporary(artifacts.read_json, memo.storage, progress_key(name, job_name))
    if not progress or progress.get("step") in (Step.DONE, Step.FAILED):
        return  # the Job's own status says when it is over
    new = {
        "step": str(progress.get("step", "")),
        "percent": max(0, min(100, int(progress.get("percent") or 0))),
        "message": str(progress.get("message", "")),
        "updated": str(progress.get("updated") or now_iso()),
    }
    if new != dict(status.get("progress") or {}):
        patch.status["progress"] = new


def check_served(body, name: str, status: dict, patch, memo: kopf.Memo, logger) -> None:
    """Ready once the model server reports the trained version AVAILABLE (`GetModelStatus`,
    as stock TF Serving answers it); until then Served=False says what it answered, and
    past `Settings.serving_load_deadline` the chatbot goes back to the version that
    answers (or Failed) with a Warning Event.

    Listed in the model ConfigMap is not answering: the mirror still has to copy the
    version and TF Serving to load it (a broken export never loads).
    """
    version, endpoint = status["modelVersion"], memo.settings.serving_endpoint
    try:
        available = memo.model_server.status(name, timeout=MODEL_STATUS_TIMEOUT_SECONDS)
    except (NotFoundError, UnavailableError, InputError) as error:
        why = str(error)
    else:
        if available == version:
            settle_serving(name, status, model_served(status, endpoint), memo)
            message = f"version {version} answers on {endpoint}"
            kopf.event(body, type="Normal", reason="Ready", message=message)
            logger.info("chatbot %s answers with version %s", name, version)
            return
        why = f"{endpoint} answers with version {available}"
    deadline = memo.settings.serving_load_deadline
    if loading_overdue(status, deadline):
        timed_out = load_timed_out(status, why, deadline)
        settle_serving(name, status, timed_out, memo)
        kopf.warn(body, reason="LoadTimeout", message=timed_out["progress"]["message"])
        logger.warning("chatbot %s: %s", name, timed_out["progress"]["message"])
        return
    if update := still_loading(status, why):
        patch.status.update(update)


def settle_serving(name: str, status: dict, new_status: dict, memo: kopf.Memo) -> None:
    """Write the versions `new_status` says the model server holds, then `new_status`.

    The list first: whoever sees the status sees the list it implies. Both under the
    serving lock: a rebuild of the list in between would read the old status and undo
    the entry. If the status write fails, the next rebuild puts back the old list.
    """
    versions = serving_versions({**status, **new_status})
    with memo.cluster.serving_lock:
        _temporary(memo.cluster.set_serving_entry, name, versions, memo.storage.root)
        _temporary(memo.cluster.patch_chatbot_status, name, new_status)


def clean_up(name, namespace, memo: kopf.Memo, logger, **_) -> None:
    """Finalizer: stop training, stop serving, delete the chatbot's objects in storage
    once no training pod of it runs (one still running could upload after the clean-up:
    the finalizer is retried until they are gone)."""
    _temporary(memo.cluster.delete_jobs, name)
    _temporary(memo.cluster.set_serving_entry, name, [], memo.storage.root)
    # Its password hash and owner-token digest (the backend removes them too, but not
    # for a Chatbot deleted with kubectl); without the chart's Secret there are none.
    with contextlib.suppress(NotFoundError):
        keys = dict.fromkeys(secret_keys(name))
        _temporary(memo.cluster.patch_secret_data, memo.settings.chatbot_secrets, keys)
    if running := _temporary(memo.cluster.unfinished_pods, name):
        message = f"waiting for training pods {', '.join(running)} to stop before deleting storage"
        raise kopf.TemporaryError(message, delay=POD_GONE_RETRY_SECONDS)
    deleted = sum(
        _temporary(memo.storage.delete_prefix, prefix) for prefix in chatbot_prefixes(name)
    )
    logger.info("deleted %d stored objects of chatbot %s/%s", deleted, namespace, name)


async def rebuild_serving_forever(memo: kopf.Memo, interval: float, logger) -> None:
    """Rebuild the served-model list from the Chatbots at start, then every `interval`.

    The Chatbots' status is the one source of truth; the ConfigMap is derived from it, so
    a `helm rollback`, a rendered chart applied over it, or its deletion heal by
    themselves, and a restarted operator serves exactly what its Chatbots say is Ready.
    """
    while True:
        try:
            written = await asyncio.to_thread(memo.cluster.rebuild_serving, memo.storage.root)
        except (UnavailableError, NotFoundError) as error:
            logger.warning("could not rebuild the served-model list: %s", error)
        else:
            if written is not None:
                logger.info("served-model list rebuilt from the Chatbots: %s", written)
        await asyncio.sleep(interval)


def register(
    registry: kopf.OperatorRegistry, progress_interval: float = PROGRESS_INTERVAL_SECONDS
) -> kopf.OperatorRegistry:
    """Attach the Chatbot and Job handlers to `registry` (one per operator run).

    The served-model list is rebuilt every `SERVING_REBUILD_INTERVALS` progress intervals.
    """
    on_chatbots = {"registry": registry}

    @kopf.on.startup(registry=registry)
    async def start_serving_rebuild(memo: kopf.Memo, logger, **_) -> None:
        interval = progress_interval * SERVING_REBUILD_INTERVALS
        memo.serving_rebuild = asyncio.create_task(rebuild_serving_forever(memo, interval, logger))

    @kopf.on.cleanup(registry=registry)
    async def stop_serving_rebuild(memo: kopf.Memo, **_) -> None:
        if task := getattr(memo, "serving_rebuild", None):
            task.cancel()

    kopf.on.create(*CHATBOTS, id="train", **on_chatbots)(start_training)
    kopf.on.update(*CHATBOTS, id="retrain", field="spec", **on_chatbots)(start_training)
    kopf.on.resume(*CHATBOTS, id="resume", **on_chatbots)(start_training)
    kopf.on.delete(*CHATBOTS, id="cleanup", **on_chatbots)(clean_up)
    kopf.timer(
        *CHATBOTS,
        id="progress",
        interval=progress_interval,
        initial_delay=progress_interval,
        backoff=progress_interval,
        when=is_training,
        **on_chatbots,
    )(poll_progress)
    kopf.on.event(
        "batch",
        "v1",
        "jobs",
        id="training-job",
        labels={LABEL_CHATBOT: kopf.PRESENT},
        registry=registry,
    )(job_changed)
    return registry

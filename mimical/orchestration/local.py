"""The embedded orchestrator: builds chatbots in worker processes on this machine.

Each build runs `run_build` in a fresh (spawned) process, so TensorFlow's memory
and threads go away with it and a crash cannot take the web server down. Builds
run one at a time (`MAX_PARALLEL_BUILDS`): training saturates the CPU anyway.

    import → corpora/NAME/VERSION.jsonl → train → models/NAME/VERSION/ → Ready

The worker reports phase and progress straight into the SQLite registry; the
parent thread that waits for it calls `on_deployed(name, version)` (the embedded
model server loads the version) and then marks the chatbot Ready.

Run one build by hand (what a worker process does), for an upload already in storage:

    python -c "from mimical.config import Settings; from mimical.orchestration.local \\
        import run_build; run_build(Settings.from_env(), 'alice', KEY, 1, None, {})"
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path, PurePosixPath

from mimical.config import Settings
from mimical.errors import MimicalError
from mimical.orchestration import DeployedCallback, Orchestrator
from mimical.registry import Phase, Registry, open_registry
from mimical.storage import Storage, chatbot_prefixes, corpus_key, model_prefix, open_storage

log = logging.getLogger(__name__)

MAX_PARALLEL_BUILDS = 1
# Share of a build's progress bar each phase ends at.
IMPORT_DONE = 0.1
TRAIN_DONE = 0.9


class _ProgressReporter:
    """Writes build progress to the registry, at most once a second (SQLite is shared)."""

    def __init__(self, registry, name: str, interval: float = 1.0):
        self.registry = registry
        self.name = name
        self.interval = interval
        self._last = 0.0

    def __call__(self, progress: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.registry.update_status(self.name, progress=progress, message=message)

    def importing(self, done: int, total: int | None) -> None:
        if total:
            self(IMPORT_DONE * done / total, f"importing: {done}/{total} chats")
        else:  # the export does not say how many chats it holds
            self(0.0, f"importing: {done} chats")

    def training(self, update: dict) -> None:
        fraction = float(update.get("fraction") or 0.0)
        detail = ", ".join(
            f"{key} {update[key]:.3g}" if isinstance(update[key], float) else f"{key} {update[key]}"
            for key in ("epoch", "loss")
            if update.get(key) is not None
        )
        step = update.get("phase", "training")
        message = "training" + (f" ({step})" if step != "training" else "")
        message += f": {detail}" if detail else ""
        self(IMPORT_DONE + (TRAIN_DONE - IMPORT_DONE) * fraction, message)


def _mark_failed(
    settings: Settings,
    storage: Storage,
    registry: Registry,
    name: str,
    version: int,
    upload_key: str,
    message: str,
) -> None:
    """Remove what a failed build stored (and its upload), then mark the chatbot Failed.

    Nothing half-written stays behind; the previously served version keeps serving.
    """
    storage.delete_prefix(corpus_key(name, version))
    storage.delete_prefix(model_prefix(name, version))
    if not settings.keep_uploads:
        storage.delete_prefix(upload_key)
    registry.update_status(name, phase=Phase.FAILED, message=message)


def _fetch_upload(storage: Storage, upload_key: str, scratch: Path) -> Path:
    local = storage.local_path(upload_key)
    if local is not None:
        return local
    return storage.get_file(upload_key, scratch / "upload" / PurePosixPath(upload_key).name)


def run_build(
    settings: Settings,
    name: str,
    upload_key: str,
    version: int,
    me: str | None,
    train_options: dict,
) -> None:
    """Import, train and store one version of `name`; on bad input mark it Failed.

    Runs in the worker process. Leaves the chatbot in Deploying with its metrics
    stored; the parent marks it Ready once the model server has the version.
    """
    from mimical.corpus.importer import import_exports

    storage = open_storage(settings.storage_root, settings)
    registry = open_registry(settings)
    scratch = Path(tempfile.mkdtemp(prefix=f"mimical-build-{name}-"))
    report = _ProgressReporter(registry, name)
    try:
        upload_name = PurePosixPath(upload_key).name
        registry.update_status(
            name, phase=Phase.IMPORTING, progress=0.0, message=f"importing {upload_name}"
        )
        export = _fetch_upload(storage, upload_key, scratch)
        corpus = scratch / "corpus.jsonl"
        stats = import_exports([export], corpus, me=me, progress=report.importing)
        storage.put_file(corpus_key(name, version), corpus)
        if not settings.keep_uploads:
            storage.delete_prefix(upload_key)

        from mimical.model.train import train_persona  # TensorFlow: only once import worked

        registry.update_status(
            name,
            phase=Phase.TRAINING,
            progress=IMPORT_DONE,
            message=f"training on {stats['pairs']} examples from {stats['format']}",
        )
        result = train_persona(
            corpus, scratch / "models", name, on_progress=report.training, **train_options
        )

        registry.update_status(
            name, phase=Phase.DEPLOYING, progress=TRAIN_DONE, message="storing the model"
        )
        storage.put_tree(model_prefix(name, version), Path(result.export_dir))
        registry.update_status(name, metrics=dict(result.metrics))
    except MimicalError as error:
        _mark_failed(settings, storage, registry, name, version, upload_key, str(error))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass(eq=False)
class _Build:
    """One requested build; `cancelled` once its chatbot is deleted (or on shutdown)."""

    name: str
    upload_key: str
    version: int
    me: str | None
    cancelled: bool = False
    process: BaseProcess | None = None
    future: Future | None = None


class LocalOrchestrator(Orchestrator):
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        *,
        on_deployed: DeployedCallback | None = None,
        train_options: dict | None = None,
    ):
        self.settings = settings
        self.storage = storage
        self.registry = open_registry(settings)
        self.on_deployed = on_deployed
        self.train_options = dict(train_options or {})
        # Spawn, not fork: the parent runs web threads and maybe TensorFlow.
        self._context = multiprocessing.get_context("spawn")
        self._executor = ThreadPoolExecutor(MAX_PARALLEL_BUILDS, thread_name_prefix="build")
        self._lock = threading.Lock()
        self._builds: dict[str, _Build] = {}

    def busy(self, name: str) -> bool:
        with self._lock:
            return name in self._builds

    def build(self, name: str, upload_key: str, *, version: int, me: str | None = None) -> None:
        build = _Build(name, upload_key, version, me)
        with self._lock:
            self._builds[name] = build
            build.future = self._executor.submit(self._run, build)

    def _run(self, build: _Build) -> None:
        try:
            with self._lock:
                if build.cancelled:
                    return
                build.process = self._context.Process(
                    target=run_build,
                    args=(
                        self.settings,
                        build.name,
                        build.upload_key,
                        build.version,
                        build.me,
                        self.train_options,
                    ),
                    name=f"mimical-build-{build.name}",
                    daemon=True,
                )
                build.process.start()
            build.process.join()
            if not build.cancelled:
                self._finish(build)
        except MimicalError as error:
            self._fail(build, str(error))
        except Exception:
            log.exception("build of %s version %s failed", build.name, build.version)
            self._fail(build, "internal error while building; see the server log")
        finally:
            with self._lock:
                if self._builds.get(build.name) is build:
                    del self._builds[build.name]

    def _finish(self, build: _Build) -> None:
        chatbot = self.registry.get(build.name)
        if chatbot.phase == Phase.FAILED:
            return  # the worker explained the failure and cleaned up
        exitcode = build.process.exitcode
        if exitcode != 0 or chatbot.phase != Phase.DEPLOYING:
            self._fail(build, f"build worker stopped (exit code {exitcode})")
            return
        if self.on_deployed is not None:
            self.on_deployed(build.name, build.version)
        self.registry.update_status(
            build.name,
            phase=Phase.READY,
            progress=1.0,
            message="ready",
            model_version=build.version,
            add_version=build.version,
        )

    def _fail(self, build: _Build, message: str) -> None:
        if build.cancelled:
            return
        _mark_failed(
            self.settings,
            self.storage,
            self.registry,
            build.name,
            build.version,
            build.upload_key,
            message,
        )

    def _cancel(self, build: _Build) -> None:
        """Stop a build: drop it from the queue, or end its worker process."""
        with self._lock:
            build.cancelled = True
            process = build.process
        build.future.cancel()
        if process is not None:
            process.terminate()
            process.join(30)

    def delete(self, name: str) -> None:
        with self._lock:
            build = self._builds.get(name)
        if build is not None:
            self._cancel(build)
        for prefix in chatbot_prefixes(name):
            self.storage.delete_prefix(prefix)

    def close(self) -> None:
        with self._lock:
            builds = list(self._builds.values())
        for build in builds:
            self._cancel(build)
        self._executor.shutdown(wait=True, cancel_futures=True)

"""The embedded orchestrator: builds chatbots in worker processes on this machine.

Each build runs `run_build` (the pipeline of `mimical.build`) in a fresh (spawned)
process, so TensorFlow's memory and threads go away with it and a crash cannot take
the web server down. Builds run one at a time (`MAX_PARALLEL_BUILDS`): training
saturates the CPU anyway. One build per chatbot: `build` checks and claims under one
lock, so of simultaneous requests for the same chatbot only the first starts one (the
orchestrator lives in the serving process).

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
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from mimical.build import build_chatbot, public_failure, remove_build
from mimical.chatbot import Phase
from mimical.config import Settings
from mimical.errors import ConflictError, MimicalError
from mimical.orchestration.base import Orchestrator
from mimical.registry import Registry, SqliteRegistry
from mimical.storage import Storage, chatbot_prefixes, next_version, open_storage

log = logging.getLogger(__name__)

MAX_PARALLEL_BUILDS = 1


class RegistryProgress:
    """Writes build progress to the registry: each new phase at once, else at most once
    per `interval` seconds (SQLite is shared with the web threads)."""

    def __init__(self, registry: Registry, name: str, interval: float = 1.0):
        self.registry = registry
        self.name = name
        self.interval = interval
        self._last = 0.0
        self._phase: Phase | None = None

    def __call__(self, phase: Phase, fraction: float, message: str) -> None:
        now = time.monotonic()
        if phase != self._phase or now - self._last >= self.interval:
            self._last, self._phase = now, phase
            self.registry.update_status(self.name, phase=phase, progress=fraction, message=message)


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
    remove_build(storage, name, version)
    if not settings.keep_uploads:
        storage.delete_prefix(upload_key)
    registry.update_status(name, phase=Phase.FAILED, message=message)


def run_build(
    settings: Settings,
    name: str,
    upload_key: str,
    version: int,
    me: str | None,
    train_options: dict,
) -> None:
    """Run the build pipeline for one version of `name`; on bad input mark it Failed.

    Runs in the worker process. Leaves the chatbot in Deploying with its metrics
    stored; the parent marks it Ready once the model server has the version.
    """
    storage = open_storage(settings.storage_root, settings)
    registry = SqliteRegistry.connect(settings)  # the local mode's registry
    try:
        result = build_chatbot(
            storage,
            name,
            upload_key,
            version,
            RegistryProgress(registry, name),
            me=me,
            delete_source=not settings.keep_uploads,
            train_options=train_options,
        )
        registry.update_status(name, metrics=result.metrics)
    except MimicalError as error:
        # The registry's message is anyone's to read; the detail is in storage for the owner.
        registry.update_status(name, phase=Phase.FAILED, message=public_failure(error))
    finally:
        registry.close()


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
    def __init__(self, settings: Settings, storage: Storage, registry: Registry, **options):
        super().__init__(settings, storage, registry, **options)
        # The training budget of `Settings.training_max_minutes` (MIMICAL_TRAINING_MAX_MINUTES,
        # `mimical serve --max-minutes`) unless the app's options name one (tests).
        if settings.training_max_minutes is not None:
            self.train_options.setdefault("max_minutes", settings.training_max_minutes)
        # Spawn, not fork: the parent runs web threads and maybe TensorFlow.
        self._context = multiprocessing.get_context("spawn")
        self._executor = ThreadPoolExecutor(MAX_PARALLEL_BUILDS, thread_name_prefix="build")
        self._lock = threading.Lock()
        self._builds: dict[str, _Build] = {}

    def busy(self, name: str) -> bool:
        with self._lock:
            return name in self._builds

    def build(self, name: str, upload_key: str, *, me: str | None = None) -> None:
        with self._lock:
            if name in self._builds:
                raise ConflictError(f"{name!r} is already being built; wait for it to finish")
            build = _Build(name, upload_key, next_version(self.storage, name), me)
            self.registry.update_status(name, phase=Phase.PENDING, progress=0.0, message="queued")
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
            self._fail(build, public_failure(error))
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

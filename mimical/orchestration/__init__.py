"""Orchestrators build chatbots: import → train → deploy, reporting into the registry.

The API only talks to this interface, so the same endpoints work embedded and on
Kubernetes. `Settings.orchestrator` picks the implementation, and the registry of
the same mode: `open_registry(settings)` (here too, so that a process that only chats
gets its registry without building an orchestrator) is handed in:

- `local` (`mimical.orchestration.local`): a worker process per build in this
  machine runs the build pipeline (`mimical.build`), a SQLite registry, models
  written to storage's `models/NAME/VERSION/` where the in-process model server
  picks them up.
- `kubernetes` (`mimical.orchestration.kubernetes`): the registry is the `Chatbot`
  custom resources (hashes in a Secret per chatbot); `build` sets the resource's
  spec so the operator runs the training Job (the same pipeline), and
  phase/progress are read back from the resource's status.

Contract for every implementation:

- `registry` is the `mimical.registry.Registry` it was given.
- `build(name, upload_key, me=...)` returns at once, or raises `ConflictError` when
  a build of `name` is already running: checking and starting are one step, so of
  several simultaneous requests exactly one starts a build. The upload is already in
  storage at `upload_key` (layout: `mimical.storage`). The build moves the chatbot
  through Importing → Training → Deploying → Ready, updating `progress` (0..1 within
  the build, `mimical.build`'s scale) and `message`; the version is one more than
  the highest stored (`mimical.storage.next_version`); on Ready it sets
  `model_version` and `add_version` and stores metrics. A failure sets phase Failed
  with a one-line message that names files only within the export (never a server
  path) and removes what that build stored (its corpus and model version); the
  previously served version, if any, keeps serving.
- `delete(name)` stops a running build of `name` and removes every object stored
  for it (uploads, corpora, models) and anything it deployed; the API then drops
  the registry record.
- `busy(name)` says whether a build of `name` is running (a quick check before an
  upload; `build` decides).
- `close()` stops background work (tests and shutdown); the registry is closed by
  whoever opened it.

Usage:

    registry = open_registry(settings)
    orchestrator = open_orchestrator(settings, storage, registry)
    chatbot, token = registry.create("alice", public=True)
    orchestrator.build("alice", "uploads/alice/1/export.zip")
"""

from __future__ import annotations

from mimical.config import Settings
from mimical.errors import InputError
from mimical.orchestration.base import DeployedCallback, Orchestrator
from mimical.registry import Registry
from mimical.storage import Storage

__all__ = ["DeployedCallback", "Orchestrator", "open_orchestrator", "open_registry"]


def open_orchestrator(
    settings: Settings,
    storage: Storage,
    registry: Registry,
    *,
    on_deployed: DeployedCallback | None = None,
    train_options: dict | None = None,
) -> Orchestrator:
    """The orchestrator `settings.orchestrator` names.

    `train_options` go to `train_persona` (e.g. `{"epochs": 1}` in tests);
    `on_deployed` is called after a version is in storage.
    """
    cls = _orchestrator_class(settings)
    return cls(
        settings, storage, registry, on_deployed=on_deployed, train_options=train_options or {}
    )


def open_registry(settings: Settings | None = None) -> Registry:
    """The registry of `settings.orchestrator`'s mode (from the environment if not given).

    `local`: the SQLite file under `settings.home`; `kubernetes`: the Chatbot resources
    of `settings.namespace` (`mimical.kube.registry`, needs the `kubernetes` client).
    """
    settings = settings or Settings.from_env()
    return _registry_class(settings).connect(settings)


# Each mode's classes are imported only when picked: the Kubernetes client is heavy and
# optional, and the local ones start worker processes.


def _orchestrator_class(settings: Settings) -> type[Orchestrator]:
    if settings.orchestrator == "local":
        from mimical.orchestration.local import LocalOrchestrator

        return LocalOrchestrator
    if settings.orchestrator == "kubernetes":
        from mimical.orchestration.kubernetes import KubernetesOrchestrator

        return KubernetesOrchestrator
    raise _unknown_mode(settings)


def _registry_class(settings: Settings) -> type[Registry]:
    if settings.orchestrator == "local":
        from mimical.registry import SqliteRegistry

        return SqliteRegistry
    if settings.orchestrator == "kubernetes":
        from mimical.kube.registry import KubernetesRegistry

        return KubernetesRegistry
    raise _unknown_mode(settings)


def _unknown_mode(settings: Settings) -> InputError:
    return InputError(f"unknown orchestrator {settings.orchestrator!r}: use local or kubernetes")

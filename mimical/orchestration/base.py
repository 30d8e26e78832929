"""The `Orchestrator` interface (its contract: the package's docstring, `mimical.orchestration`).

A module of its own, below the package's factories: each implementation imports it,
and the factories import each implementation, with no import running back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from mimical.config import Settings
from mimical.registry import Registry
from mimical.storage import Storage

# Called with (name, version) once a version is deployed; the embedded server hooks in here.
DeployedCallback = Callable[[str, int], None]


class Orchestrator(ABC):
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        registry: Registry,
        *,
        on_deployed: DeployedCallback | None = None,
        train_options: dict | None = None,
    ):
        self.settings = settings
        self.storage = storage
        self.registry = registry
        self.on_deployed = on_deployed
        self.train_options = dict(train_options or {})

    @abstractmethod
    def build(self, name: str, upload_key: str, *, me: str | None = None) -> None:
        """Start building `name` from the export at `upload_key` and return at once.

        `ConflictError` if a build of `name` is already running.
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Stop any build of `name` and remove everything stored or deployed for it."""

    @abstractmethod
    def busy(self, name: str) -> bool:
        """True while a build of `name` is running."""

    @abstractmethod
    def close(self) -> None:
        """Stop background work (shutdown, tests)."""

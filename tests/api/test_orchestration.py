"""The orchestrator interface and the local orchestrator's progress reporting."""

from __future__ import annotations

import pytest

from mimical.config import Settings
from mimical.errors import InputError
from mimical.orchestration import open_orchestrator
from mimical.orchestration.local import (
    IMPORT_DONE,
    TRAIN_DONE,
    LocalOrchestrator,
    _ProgressReporter,
)
from mimical.registry import SqliteRegistry
from mimical.storage import open_storage


@pytest.fixture
def registry(tmp_path):
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    registry.create("alice", public=True)
    return registry


def test_import_progress_with_and_without_a_total(registry):
    report = _ProgressReporter(registry, "alice", interval=0)
    report.importing(5, 10)
    assert registry.get("alice").progress == pytest.approx(IMPORT_DONE / 2)
    report.importing(7, None)  # some exports do not say how many chats they hold
    assert registry.get("alice").message == "importing: 7 chats"


def test_training_progress_maps_into_its_share(registry):
    report = _ProgressReporter(registry, "alice", interval=0)
    report.training({"phase": "training", "fraction": 0.5, "epoch": 2, "loss": 3.14159})
    chatbot = registry.get("alice")
    assert chatbot.progress == pytest.approx((IMPORT_DONE + TRAIN_DONE) / 2)
    assert chatbot.message == "training: epoch 2, loss 3.14"
    report.training({"phase": "preparing", "fraction": 0.0})
    assert registry.get("alice").message == "training (preparing)"


def test_reports_are_throttled(registry):
    report = _ProgressReporter(registry, "alice", interval=60)
    report.importing(1, 10)
    report.importing(9, 10)  # within the interval: not written
    assert registry.get("alice").message == "importing: 1/10 chats"


def test_open_orchestrator_picks_by_settings(tmp_path):
    settings = Settings(home=tmp_path)
    storage = open_storage(settings.storage_root, settings)
    orchestrator = open_orchestrator(settings, storage)
    assert isinstance(orchestrator, LocalOrchestrator)
    orchestrator.close()
    with pytest.raises(InputError, match="unknown orchestrator"):
        open_orchestrator(settings.with_overrides(orchestrator="cron"), storage)

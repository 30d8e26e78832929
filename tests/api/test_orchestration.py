"""The orchestrator interface, the build pipeline's progress scale and its registry reports."""

from __future__ import annotations

import pytest

from mimical.build import (
    PHASE_ENDS,
    build_chatbot,
    import_message,
    overall,
    training_message,
)
from mimical.chatbot import BUILD_PHASES, Phase
from mimical.config import Settings
from mimical.errors import InputError
from mimical.orchestration import open_orchestrator, open_registry
from mimical.orchestration.local import LocalOrchestrator, RegistryProgress
from mimical.registry import SqliteRegistry
from mimical.storage import model_versions, next_version, open_storage


@pytest.fixture
def registry(tmp_path):
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    registry.create("alice", public=True)
    yield registry
    registry.close()


def test_each_phase_fills_its_share_of_one_scale():
    imported, trained = PHASE_ENDS[Phase.IMPORTING], PHASE_ENDS[Phase.TRAINING]
    assert overall(Phase.IMPORTING, 0.5) == pytest.approx(imported / 2)
    assert overall(Phase.TRAINING, 0.5) == pytest.approx((imported + trained) / 2)
    assert overall(Phase.DEPLOYING, 1.0) == 1.0
    assert overall(Phase.TRAINING, 7.0) == pytest.approx(trained)  # clamped


def test_progress_messages_say_what_is_going_on():
    assert import_message(5, 10) == "importing: 5/10 chats"
    assert import_message(7, None) == "importing: 7 chats"  # Telegram does not say up front
    update = {"phase": "training", "fraction": 0.5, "epoch": 2, "loss": 3.14159}
    assert training_message(update) == "training: epoch 2, loss 3.14"
    assert training_message({"phase": "preparing", "fraction": 0.0}) == "training (preparing)"


def test_registry_reports_write_new_phases_at_once_and_throttle_the_rest(registry):
    report = RegistryProgress(registry, "alice", interval=60)
    report(Phase.IMPORTING, 0.01, import_message(1, 10))
    report(Phase.IMPORTING, 0.09, import_message(9, 10))  # within the interval: not written
    assert registry.get("alice").message == "importing: 1/10 chats"
    report(Phase.TRAINING, 0.1, "training on 40 examples from messenger")
    chatbot = registry.get("alice")
    assert (chatbot.phase, chatbot.progress) == (Phase.TRAINING, pytest.approx(0.1))


def test_local_builds_take_their_budget_from_the_settings(tmp_path):
    """MIMICAL_TRAINING_MAX_MINUTES (or `mimical serve --max-minutes`) bounds local builds;
    an app's own train options (tests) still win."""
    settings = Settings(home=tmp_path, training_max_minutes=2.5)
    storage = open_storage(settings.storage_root, settings)
    registry = open_registry(settings)
    orchestrator = open_orchestrator(settings, storage, registry, train_options={"epochs": 1})
    assert orchestrator.train_options == {"epochs": 1, "max_minutes": 2.5}
    orchestrator.close()
    chosen = open_orchestrator(settings, storage, registry, train_options={"max_minutes": 0.1})
    assert chosen.train_options == {"max_minutes": 0.1}
    chosen.close()
    unset = open_orchestrator(Settings(home=tmp_path), storage, registry)
    assert unset.train_options == {}
    unset.close()
    registry.close()


def test_open_orchestrator_picks_by_settings(tmp_path):
    settings = Settings(home=tmp_path)
    storage = open_storage(settings.storage_root, settings)
    registry = open_registry(settings)
    orchestrator = open_orchestrator(settings, storage, registry)
    assert isinstance(orchestrator, LocalOrchestrator) and orchestrator.registry is registry
    orchestrator.close()
    cron = settings.with_overrides(orchestrator="cron")
    with pytest.raises(InputError, match="unknown orchestrator"):
        open_orchestrator(cron, storage, registry)
    with pytest.raises(InputError, match="unknown orchestrator"):
        open_registry(cron)
    registry.close()


@pytest.mark.slow
def test_a_corpus_builds_the_next_version_on_one_progress_scale(tmp_path, small_corpus):
    from mimical.model.train import tiny_config

    storage = open_storage(tmp_path.as_uri())
    storage.put_bytes("models/alice/4/saved_model.pb", b"an older version")
    storage.put_file("uploads/alice/1/corpus.jsonl", small_corpus)
    reports = []

    result = build_chatbot(
        storage,
        "alice",
        "uploads/alice/1/corpus.jsonl",
        next_version(storage, "alice"),
        lambda phase, fraction, message: reports.append((phase, fraction)),
        delete_source=True,
        train_options={"epochs": 1, "config": tiny_config()},
    )

    assert result.version == 5 and model_versions(storage, "alice") == [4, 5]
    assert storage.exists("corpora/alice/5.jsonl")
    assert storage.list("uploads/") == []  # the source went once it was stored
    phases = [phase for phase, _ in reports]
    assert sorted(set(phases), key=phases.index) == list(BUILD_PHASES)
    # Each phase stays in its share of the one 0..1 scale.
    assert all(overall(phase, 0.0) <= f <= overall(phase, 1.0) for phase, f in reports)
    assert reports[-1] == (Phase.DEPLOYING, 1.0)


class StopBeforeTraining(Exception):
    """Raised from the progress callback: the messages up to training are all we need."""


def test_progress_never_names_the_exports_files(tmp_path, small_corpus):
    """A public persona's status is public: `importing WhatsApp_Chat_with_Jane_Doe.txt`
    named the owner's chat partner to anyone who looked."""
    storage = open_storage(tmp_path.as_uri())
    key = "uploads/alice/1/WhatsApp_Chat_with_Jane_Doe.jsonl"
    storage.put_file(key, small_corpus)
    messages = []

    def report(phase, fraction, message):
        messages.append(message)
        if phase == Phase.TRAINING:
            raise StopBeforeTraining

    with pytest.raises(StopBeforeTraining):
        build_chatbot(storage, "alice", key, 1, report)
    assert messages == ["importing the export", "training on the corpus"]

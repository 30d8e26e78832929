"""The SQLite registry: creation rules, secrets, status updates, concurrent writers."""

from __future__ import annotations

import multiprocessing

import pytest

from mimical.chatbot import NAME_MAX_LENGTH, Phase
from mimical.errors import ConflictError, InputError, NotFoundError
from mimical.registry import SqliteRegistry


@pytest.fixture
def registry(tmp_path):
    return SqliteRegistry(tmp_path / "registry.sqlite3")


def test_create_and_get(registry):
    chatbot, token = registry.create("alice", public=True, display_name="Alice")
    assert chatbot.phase == Phase.PENDING and not chatbot.servable
    assert chatbot.display_name == "Alice" and not chatbot.has_password
    assert registry.verify_owner_token("alice", token)
    assert not registry.verify_owner_token("alice", token + "x")
    assert not registry.verify_owner_token("alice", None)
    assert registry.verify_password("alice", None)  # no password: open to all
    with pytest.raises(ConflictError):
        registry.create("alice", public=True)


@pytest.mark.parametrize("name", ["Alice", "-a", "a-", "a_b", "a" * 41, "", "../x"])
def test_bad_names(registry, name):
    with pytest.raises(InputError):
        registry.create(name, public=True)


def test_private_needs_password(registry):
    with pytest.raises(InputError, match="password"):
        registry.create("bob", public=False)
    registry.create("bob", public=False, password="hunter2")
    assert registry.verify_password("bob", "hunter2")
    assert not registry.verify_password("bob", "hunter3")
    assert not registry.verify_password("bob", None)
    assert registry.list_public() == []
    # The hash is argon2id, never the clear password.
    stored = registry.secrets("bob")[0]
    assert stored.startswith("$argon2id$") and "hunter2" not in stored


def test_status_updates(registry):
    registry.create("carol", public=True)
    registry.update_status("carol", phase=Phase.TRAINING, progress=0.5, message="epoch 1")
    chatbot = registry.update_status(
        "carol", phase="Ready", progress=1, model_version=1, add_version=1, metrics={"loss": 1.2}
    )
    assert chatbot.phase == Phase.READY and chatbot.servable
    assert chatbot.versions == [1] and chatbot.metrics == {"loss": 1.2}
    assert chatbot.message == "epoch 1"
    registry.delete("carol")
    with pytest.raises(NotFoundError):
        registry.get("carol")
    with pytest.raises(NotFoundError):
        registry.verify_password("carol", "x")


def _bump(path, name, count):
    registry = SqliteRegistry(path)
    for step in range(count):
        registry.update_status(name, progress=step / count, add_version=step)


def test_concurrent_processes(registry):
    registry.create("dave", public=True)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_bump, args=(registry.path, "dave", 20)) for _ in range(2)]
    for worker in workers:
        worker.start()
    _bump(registry.path, "dave", 20)
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert registry.get("dave").versions == list(range(20))


def test_longest_name_leaves_room_for_the_training_job_suffix(registry):
    chatbot, _ = registry.create("a" * NAME_MAX_LENGTH, public=True)
    assert len(f"{chatbot.name}-train-9999") <= 63  # still a DNS label as a Job name

"""Training: versions, repeatability, resume, limits and clear errors on bad corpora."""

from __future__ import annotations

import json
import re

import pytest

from mimical.corpus.schema import CorpusMessage, read_corpus
from mimical.errors import InputError
from mimical.model.data import MAX_TEST_FRACTION, MIN_REPLIES, TEST_REPLIES, load_split
from mimical.model.train import tiny_config, train_persona
from tests.fixtures.corpus import write_corpus


def tiny_train(corpus, model_base, **options):
    return train_persona(corpus, model_base, "p", config=tiny_config(), **options)


@pytest.fixture(scope="module")
def short_corpus(small_corpus, tmp_path_factory):
    """The first 40 conversations of `small_corpus`: enough to train, quick to train twice."""
    keep = sorted({(m.thread, m.conversation) for m in read_corpus(small_corpus)})[:40]
    path = tmp_path_factory.mktemp("short") / "short.jsonl"
    write_corpus((m for m in read_corpus(small_corpus) if (m.thread, m.conversation) in keep), path)
    return path


def test_split_is_by_conversation_with_validation_carved_from_training(small_corpus):
    """Test conversations are never read by training; validation ones choose the checkpoint."""
    split = load_split(small_corpus, seed=0)
    parts = (split.train, split.validation, split.test)
    train_keys, validation_keys, test_keys = (
        {(p.thread, p.conversation) for p in part} for part in parts
    )
    assert validation_keys and test_keys
    assert not train_keys & test_keys and not validation_keys & test_keys
    assert not train_keys & validation_keys
    total = sum(map(len, parts))
    assert len(split.test) >= min(TEST_REPLIES, 0.15 * total)
    assert len(split.test) <= 1.5 * min(TEST_REPLIES, MAX_TEST_FRACTION * total)
    assert 0.05 <= len(split.validation) / (len(split.train) + len(split.validation)) <= 0.16


def test_the_export_records_which_conversations_are_for_testing(tiny_model):
    from mimical.model.export import read_extra

    recorded = read_extra(tiny_model.export_dir, "split.json")
    split = load_split(tiny_model.corpus, seed=0)
    assert {tuple(k) for k in recorded["test"]} == {(p.thread, p.conversation) for p in split.test}
    assert {tuple(k) for k in recorded["validation"]} == {
        (p.thread, p.conversation) for p in split.validation
    }
    assert tiny_model.metrics["validation_replies"] == len(split.validation)


def test_retraining_adds_a_version_and_the_seed_repeats_it(short_corpus, tmp_path):
    first = tiny_train(short_corpus, tmp_path, epochs=1, seed=5)
    second = tiny_train(short_corpus, tmp_path, epochs=1, seed=5)
    assert (first.version, second.version) == (1, 2)
    assert second.export_dir == tmp_path / "p" / "2"
    assert first.metrics["validation_bits_per_char"] == second.metrics["validation_bits_per_char"]
    assert (first.export_dir / "variables" / "variables.data-00000-of-00001").read_bytes() == (
        second.export_dir / "variables" / "variables.data-00000-of-00001"
    ).read_bytes()


def test_interrupted_training_resumes_from_its_checkpoint(short_corpus, tmp_path):
    def interrupt_in_second_epoch(update):
        if update.get("epoch") == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_train(short_corpus, tmp_path, epochs=2, on_progress=interrupt_in_second_epoch)
    assert not (tmp_path / "p").exists()  # nothing exported from a broken run

    phases = []
    result = tiny_train(short_corpus, tmp_path, epochs=2, on_progress=phases.append)
    curve = json.loads((result.export_dir / "assets.extra" / "curve.json").read_text())
    assert result.metrics["resumed_from_step"] == curve[0]["step"] > 0
    assert [point["epoch"] for point in curve] == [1, 2]
    assert not (tmp_path / ".checkpoints" / "p").exists()
    assert [p["phase"] for p in phases][0] == "preparing" and phases[-1]["phase"] == "done"
    assert all(0 <= p["fraction"] <= 1 for p in phases)


def test_time_limit_stops_training(short_corpus, tmp_path):
    result = tiny_train(short_corpus, tmp_path, max_minutes=0.0001, epochs=5)
    assert result.metrics["stop_reason"] == "time limit"
    assert result.metrics["epochs"] == 1


def write_messages(path, conversations, replies_each):
    messages = []
    for c in range(conversations):
        for turn in range(replies_each * 2):
            persona = turn % 2 == 1
            text = f"reply {c} {turn}" if persona else f"hello {c} {turn}"
            messages.append(
                CorpusMessage(
                    f"t{c}",
                    0,
                    turn,
                    "me" if persona else "friend",
                    persona,
                    "2024-01-01T00:00:00Z",
                    text,
                )
            )
    write_corpus(messages, path)
    return path


def test_empty_corpus_is_a_clear_error(tmp_path):
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text("")
    with pytest.raises(InputError, match="no persona replies"):
        tiny_train(corpus, tmp_path / "models")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_too_small_corpus_names_the_minimum(tmp_path):
    corpus = write_messages(tmp_path / "small.jsonl", conversations=3, replies_each=4)
    with pytest.raises(InputError, match=f"need at least {MIN_REPLIES} replies"):
        tiny_train(corpus, tmp_path / "models")


def test_fine_tuning_the_shipped_base_replies_with_real_words(short_corpus, tmp_path):
    """A few steps from the base: its subword graph exports with core ops, and it writes
    words people use (here: words of the corpus), not character soup."""
    from mimical.corpus.schema import read_corpus
    from mimical.model.base_model import load_base
    from mimical.model.export import graph_op_types, load_export, non_core_ops

    result = train_persona(short_corpus, tmp_path, "fine", max_minutes=0.01, seed=1)
    assert result.metrics["started_from"] == f"base v{load_base().version}"
    assert result.metrics["stop_reason"] == "time limit"
    assert non_core_ops(graph_op_types(result.export_dir)) == []

    import tensorflow as tf

    known = {w for m in read_corpus(short_corpus) for w in re.findall(r"[a-z']+", m.text.lower())}
    replies = (
        load_export(result.export_dir)
        .signatures["reply"](
            context=tf.constant(["hey! how was your weekend?", "do you like music?"]),
            temperature=tf.constant([0.0, 0.7]),
            max_chars=tf.constant([80, 80]),
            seed=tf.constant([1, 2], tf.int64),
        )["reply"]
        .numpy()
    )
    words = [w for r in replies for w in re.findall(r"[a-z']+", r.decode().lower())]
    assert len(words) >= 3
    assert sum(w in known for w in words) / len(words) >= 0.8


def test_fine_tuning_warms_up_then_holds_then_decays():
    from mimical.model.train import FINE_TUNE

    rates = [FINE_TUNE.rate(0.0, step) for step in range(FINE_TUNE.warmup_steps + 5)]
    assert rates[0] == pytest.approx(FINE_TUNE.learning_rate / FINE_TUNE.warmup_steps)
    assert rates == sorted(rates) and rates[-1] == FINE_TUNE.learning_rate
    assert FINE_TUNE.rate(1.0, 1000) == pytest.approx(FINE_TUNE.learning_rate / 10)
    # The base already knows chat text: fine-tuning spends most of its loss on replies.
    assert FINE_TUNE.context_loss_weight < 0.5


def test_contrastive_batches_put_each_reply_after_the_next_rows_context():
    import numpy as np

    from mimical.model.data import batches
    from mimical.model.model import EOT, SEP

    examples = [np.array([10 + i] * (1 + i % 3) + [SEP, 30 + i, EOT]) for i in range(4)]
    [(inputs, targets, _, other_inputs, other_targets)] = list(
        batches(examples, 4, context_weight=0.5, mismatched_rows=2)
    )

    def sequence(inputs, targets, row):  # the row's tokens, padding aside
        n = int((targets[row] > 0).sum())
        return [*inputs[row][:n], targets[row][n - 1]]

    assert other_inputs.shape[0] == 2
    for row in range(2):
        own, following = sequence(inputs, targets, row), sequence(inputs, targets, row + 1)
        swapped = sequence(other_inputs, other_targets, row)
        cut = swapped.index(SEP)
        assert swapped[:cut] == following[: following.index(SEP)]  # the next row's context
        assert swapped[cut:] == own[own.index(SEP) :]  # its own reply

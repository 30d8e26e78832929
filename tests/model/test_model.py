"""The network and its plain-op twin agree, without training anything."""

from __future__ import annotations

import numpy as np
import pytest

from mimical.model.model import (
    EOT,
    SEP,
    UNK,
    ModelConfig,
    Vocabulary,
    build_keras_model,
    example_tokens,
    network_weights,
    reply_generator,
)

TEXT = "hey you 😀 what's up?\nNot much. ABC xyz 123"


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_texts([TEXT])


@pytest.mark.parametrize(("layers", "projection_dim"), [(1, 0), (2, 0), (1, 6)])
def test_generator_step_reproduces_the_keras_model(vocab, layers, projection_dim):
    import tensorflow as tf

    config = ModelConfig(units=24, embedding_dim=8, layers=layers, projection_dim=projection_dim)
    model = build_keras_model(config, vocab.size)
    generator = reply_generator(network_weights(model, config), vocab, config)
    tokens = example_tokens(vocab, config, "hi there", "hello 😀")
    expected = model(np.array([tokens]), training=False).numpy()[0]  # (T, V)
    states, got = generator.initial_state(1), []
    for token in tokens:
        states = generator.advance(tf.constant([token]), states)
        got.append(generator.logits(states).numpy()[0])
    np.testing.assert_allclose(np.array(got), expected, atol=1e-5)


def test_vocabulary_round_trip_and_unknown_characters(vocab):
    assert vocab.decode(vocab.encode(TEXT)) == TEXT
    assert vocab.encode("§") == [UNK]
    assert Vocabulary.from_json(vocab.to_json()) == vocab


def test_example_tokens_mark_context_reply_and_end(vocab):
    config = ModelConfig(context_chars=3, reply_tokens=5)
    tokens = example_tokens(vocab, config, "hey you", "hi")
    assert tokens == [*vocab.encode("you"), SEP, *vocab.encode("hi"), EOT]
    cut = example_tokens(vocab, config, "", "what's up")
    assert cut == [SEP, *vocab.encode("what'")]  # too long: cut, no end of turn
    few_tokens = ModelConfig(context_chars=10, context_tokens=2)
    assert example_tokens(vocab, few_tokens, "hey you", "")[:2] == vocab.encode("ou")


def test_in_graph_context_reading_matches_python(vocab):
    """The graph reads the same context tokens as training: its state after them agrees."""
    import tensorflow as tf

    config = ModelConfig(units=8, embedding_dim=4, context_chars=6, context_tokens=4)
    model = build_keras_model(config, vocab.size)
    generator = reply_generator(network_weights(model, config), vocab, config)
    texts = ["hey 😀§ you", "", "up?"]
    states = generator.read_context(tf.constant(texts))
    for row, text in enumerate(texts):
        expected = generator.initial_state(1)
        for token in example_tokens(vocab, config, text, "")[:-1]:  # up to and with SEP
            expected = generator.advance(tf.constant([token]), expected)
        np.testing.assert_allclose(states[0].numpy()[row], expected[0].numpy()[0], atol=1e-6)


def test_the_verbatim_guard_spots_training_spans_as_evaluate_counts_them(vocab):
    """`recites` flags a text that repeats 6 words of a training message in a row, with
    the words `mimical evaluate` counts (case and punctuation aside), and nothing else."""
    import tensorflow as tf

    from mimical.model.model import span_fingerprints

    config = ModelConfig(units=8, embedding_dim=4)
    model = build_keras_model(config, vocab.size)
    spans = span_fingerprints(["we could go to the beach on sunday", "short one"])
    generator = reply_generator(network_weights(model, config), vocab, config, spans)
    texts = [
        "Well, we could go to the BEACH!",
        "we could go to a beach",
        "short one",
        "",
    ]
    assert generator.recites(tf.constant(texts)).numpy().tolist() == [True, False, False, False]


def test_a_reply_never_holds_a_turn_marker_however_likely():
    """A reply is one turn: a sampled marker would be read as the next turn's speaker."""
    import tensorflow as tf

    from mimical.corpus.schema import OTHER_TURN, OWN_TURN

    vocab = Vocabulary.from_texts([TEXT, OWN_TURN + OTHER_TURN])
    config = ModelConfig(units=8, embedding_dim=4, candidates=2)
    model = build_keras_model(config, vocab.size)
    weights = network_weights(model, config)
    for marker in (OWN_TURN, OTHER_TURN):
        weights["logits_bias"][vocab.encode(marker)[0]] = 50.0  # all but certain
    generator = reply_generator(weights, vocab, config)
    replies = generator.reply(
        tf.constant(["\x1ehey"] * 4),
        tf.ones([4]),
        tf.fill([4], 40),
        tf.range(4, dtype=tf.int64),
    )["reply"]
    texts = [r.decode() for r in replies.numpy()]
    assert all(text and OWN_TURN not in text and OTHER_TURN not in text for text in texts)

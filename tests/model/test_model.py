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
    reply_generator,
)

TEXT = "hey you 😀 what's up?\nNot much. ABC xyz 123"


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_texts([TEXT])


@pytest.mark.parametrize("layers", [1, 2])
def test_generator_step_reproduces_the_keras_model(vocab, layers):
    import tensorflow as tf

    config = ModelConfig(units=24, embedding_dim=8, layers=layers)
    model = build_keras_model(config, vocab.size)
    generator = reply_generator(model, vocab, config)
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
    config = ModelConfig(context_chars=3, reply_chars=5)
    tokens = example_tokens(vocab, config, "hey you", "hi")
    assert tokens == [*vocab.encode("you"), SEP, *vocab.encode("hi"), EOT]
    cut = example_tokens(vocab, config, "", "what's up")
    assert cut == [SEP, *vocab.encode("what'")]  # too long: cut, no end of turn


def test_in_graph_tokenizer_matches_python(vocab):
    import tensorflow as tf

    config = ModelConfig(units=8, embedding_dim=4, context_chars=6)
    generator = reply_generator(build_keras_model(config, vocab.size), vocab, config)
    texts = ["hey 😀§ you", "", "up?"]
    ids, lengths = generator.encode(tf.constant(texts), config.context_chars)
    for row, text in enumerate(texts):
        expected = vocab.encode(text[-6:])
        assert ids.numpy()[row, : lengths.numpy()[row]].tolist() == expected

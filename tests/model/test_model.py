"""The network and its plain-op twin agree, without training anything."""

from __future__ import annotations

import numpy as np
import pytest

from mimical.model.generator import reply_generator
from mimical.model.model import (
    EOT,
    SEP,
    UNK,
    ModelConfig,
    Vocabulary,
    build_keras_model,
    example_tokens,
    network_weights,
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
    states, _ = generator.read_context(tf.constant(texts))
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


ATTENTION = ModelConfig(
    units=12,
    embedding_dim=6,
    projection_dim=5,
    attention_dim=8,
    attention_heads=2,
    context_chars=40,
    context_tokens=16,
)


@pytest.fixture(scope="module")
def attending(vocab):
    """A network with attention over the context, random weights: (Keras model, generator)."""
    model = build_keras_model(ATTENTION, vocab.size)
    return model, reply_generator(network_weights(model, ATTENTION), vocab, ATTENTION)


def test_attention_scores_a_reply_as_training_does(vocab, attending):
    """`score` (read the context, attend over its states while reading the reply) gives
    the nats the Keras model gives the reply positions, for contexts of every length."""
    import tensorflow as tf

    model, generator = attending
    pairs = [("hey you 😀 what's up?", "Not much."), ("", "hey"), ("up?", "ABC xyz 123\nyou")]
    scored = generator.score(tf.constant([c for c, _ in pairs]), tf.constant([r for _, r in pairs]))
    for row, (context, reply) in enumerate(pairs):
        tokens = np.array(example_tokens(vocab, ATTENTION, context, reply))
        logits = model(tokens[None, :-1], training=False).numpy()[0]
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        sep = int(np.argmax(tokens == SEP))
        expected = -sum(log_probs[t, tokens[t + 1]] for t in range(sep, len(tokens) - 1))
        assert scored["nats"].numpy()[row] == pytest.approx(expected, rel=1e-4)


def test_the_language_model_rows_read_text_as_the_context_positions_did(vocab, attending):
    """The sampler's language-model rows (log p of a reply without its context) attend
    over their own states so far, as context positions do in training."""
    import tensorflow as tf

    model, generator = attending
    text = vocab.encode("hey you what's up? Not much. ABC xyz 123 hey")  # past the ring
    expected = model(np.array([[*text, SEP]]), training=False).numpy()[0][: len(text)]
    _, context_memory = generator.read_context(tf.constant(["hi"]))
    memory = generator.sampling_memory(context_memory, 1)
    states = [tf.zeros([2, ATTENTION.units])]
    got = []
    for step, token in enumerate(text):
        states = generator.advance(tf.constant([token, token]), states)
        memory = generator.remember_text(memory, states[-1], step)
        got.append(generator.logits(states, memory).numpy()[1])
    window = ATTENTION.context_tokens  # beyond it, training never saw older states
    np.testing.assert_allclose(np.array(got)[:window], expected[:window], atol=1e-5)


def test_a_model_with_attention_replies_and_reloads(vocab, attending, tmp_path):
    import tensorflow as tf

    _, generator = attending
    tf.saved_model.save(generator, str(tmp_path), signatures={"reply": generator.reply})
    loaded = tf.saved_model.load(str(tmp_path))
    replies = loaded.reply(
        tf.constant(["\x1ehey", ""]), tf.ones([2]), tf.fill([2], 30), tf.range(2, dtype=tf.int64)
    )["reply"]
    assert replies.shape == (2,)

    from mimical.model.export import graph_op_types, non_core_ops

    assert non_core_ops(graph_op_types(tmp_path)) == []  # stock TF Serving runs it


def test_a_reply_never_invents_a_placeholder_however_likely():
    """Personal data is never made up: the scrubber's placeholder pieces are forbidden."""
    import tensorflow as tf

    from mimical.model.tokenizer import Tokenizer, placeholder_ids, placeholder_pieces

    tokenizer = Tokenizer.train([TEXT] * 5, vocab_size=300, extra=placeholder_pieces())
    config = ModelConfig(tokens="pieces", units=8, embedding_dim=4, candidates=2)
    model = build_keras_model(config, tokenizer.size)
    weights = network_weights(model, config)
    weights["logits_bias"][placeholder_ids(tokenizer)] = 50.0  # all but certain
    generator = reply_generator(weights, tokenizer, config)
    replies = generator.reply(
        tf.constant(["\x1emy mail is <EMAIL>"] * 4),
        tf.ones([4]),
        tf.fill([4], 40),
        tf.range(4, dtype=tf.int64),
    )["reply"]
    from mimical.corpus.schema import PLACEHOLDER, URL_PLACEHOLDER_START

    texts = [r.decode() for r in replies.numpy()]
    assert not any(PLACEHOLDER.search(t) or URL_PLACEHOLDER_START in t for t in texts)


def test_a_reply_link_is_learnt_as_the_bare_placeholder(vocab):
    """Where a reply shared a link, training sees `<URL>` (never its host)."""
    from mimical.model.tokenizer import Tokenizer, placeholder_pieces

    tokenizer = Tokenizer.train([TEXT] * 5, vocab_size=300, extra=placeholder_pieces())
    tokens = example_tokens(tokenizer, ModelConfig(), "look <URL:x.com>", "ha <URL:y.com>")
    reply = tokens[tokens.index(SEP) + 1 : -1]
    assert tokenizer.decode(reply) == "ha <URL>"

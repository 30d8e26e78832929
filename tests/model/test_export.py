"""The exported SavedModel: TF Serving layout, the `reply` contract, only core ops."""

from __future__ import annotations

import json

import pytest

from mimical.model.export import graph_op_types, load_export, non_core_ops


def call_reply(model, contexts, temperature=0.8, max_chars=60, seed=1):
    import tensorflow as tf

    n = len(contexts)
    result = model.signatures["reply"](
        context=tf.constant(contexts),
        temperature=tf.fill([n], float(temperature)),
        max_chars=tf.fill([n], max_chars),
        seed=tf.fill([n], tf.constant(seed, tf.int64)),
    )
    return [r.decode("utf-8") for r in result["reply"].numpy()]


@pytest.fixture(scope="module")
def exported(tiny_model):
    return load_export(tiny_model.export_dir)


def test_export_uses_tf_serving_layout(tiny_model):
    assert tiny_model.export_dir == tiny_model.model_base / tiny_model.name / "1"
    assert (tiny_model.export_dir / "saved_model.pb").is_file()
    assert (tiny_model.export_dir / "variables").is_dir()
    extra = tiny_model.export_dir / "assets.extra"
    metrics = json.loads((extra / "metrics.json").read_text())
    assert metrics["validation_bits_per_char"] > 0 and metrics["device"] == "CPU"
    assert len(json.loads((extra / "curve.json").read_text())) == metrics["epochs"]
    assert not list(tiny_model.model_base.glob("*/.partial-*"))


def test_signatures_follow_the_serving_contract(exported):
    import tensorflow as tf

    for name in ("reply", "serving_default"):
        signature = exported.signatures[name]
        inputs = signature.structured_input_signature[1]
        assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
            "context": (tf.string, [None]),
            "temperature": (tf.float32, [None]),
            "max_chars": (tf.int32, [None]),
            "seed": (tf.int64, [None]),
        }
        assert signature.structured_outputs["reply"].dtype == tf.string


def test_reply_returns_one_string_per_context(exported):
    replies = call_reply(exported, ["how are you?", "", "haha 😀 nice"], max_chars=40)
    assert len(replies) == 3
    assert all(isinstance(r, str) and len(r) <= 40 for r in replies)
    assert call_reply(exported, ["hi"], max_chars=0) == [""]


def test_same_seed_same_reply_and_seeds_vary(exported):
    context = ["what are you doing this weekend?"]
    assert call_reply(exported, context, seed=7) == call_reply(exported, context, seed=7)
    assert len({call_reply(exported, context, seed=s)[0] for s in range(6)}) > 1


def test_reply_does_not_depend_on_the_other_rows(exported):
    alone = call_reply(exported, ["hello"], seed=3)
    batched = call_reply(exported, ["hello", "something else entirely"], seed=3)
    assert batched[0] == alone[0]


def greedy_reply_by_python_loop(export_dir, context: str, max_chars: int) -> str:
    """The reference for `reply` at temperature 0: one Python call per token."""
    import tensorflow as tf

    from mimical.model.export import read_extra
    from mimical.model.generator import reply_generator
    from mimical.model.model import EOT, ModelConfig, Vocabulary

    loaded = load_export(export_dir)
    config = ModelConfig(**read_extra(export_dir, "config.json"))
    vocab = Vocabulary(tuple(read_extra(export_dir, "vocabulary.json")["codepoints"]))
    weights = {"embedding": loaded.embedding.numpy()}
    for layer, variables in enumerate(loaded.gru):
        for part, variable in zip(("kernel", "recurrent_kernel", "bias"), variables, strict=True):
            weights[f"gru_{layer}_{part}"] = variable.numpy()
    weights["logits_kernel"] = loaded.logits_kernel.numpy()
    weights["logits_bias"] = loaded.logits_bias.numpy()
    generator = reply_generator(weights, vocab, config)
    (states, memory), tokens = generator.read_context(tf.constant([context])), []
    while len(tokens) < max_chars:
        token = int(tf.argmax(generator.logits(states, memory)[0] + generator.forbidden))
        if token == EOT:
            break
        tokens.append(token)
        states = generator.advance(tf.constant([token]), states)
    return vocab.decode(tokens)


def test_greedy_in_graph_reply_matches_a_python_loop_over_the_same_weights(tiny_model):
    exported = load_export(tiny_model.export_dir)
    for context in ["hi there", ""]:
        in_graph = call_reply(exported, [context], temperature=0.0)
        assert in_graph == [greedy_reply_by_python_loop(tiny_model.export_dir, context, 60)]


def test_export_contains_only_core_tensorflow_ops(tiny_model):
    ops = graph_op_types(tiny_model.export_dir)
    assert {"While", "UnicodeDecode", "UnicodeEncode", "MatMul", "TopKV2"} <= ops
    assert non_core_ops(ops) == []

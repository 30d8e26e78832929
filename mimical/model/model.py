"""The persona model: a GRU language model that reads a context and writes a reply.

Top to bottom: the config dataclass, the character vocabulary, one training example's
tokens, the Keras model that training fits (embedding → GRU → attention over the
context's token states → logits) and the verbatim-span fingerprints. The same weights
as plain TensorFlow ops, with the whole reply path in one graph, are
`mimical.model.generator`'s `ReplyGenerator`: what gets exported for TensorFlow Serving.

A training example is one token sequence:

    [context tokens (of its last `context_chars`, at most `context_tokens`)] SEP [reply] EOT

The loss counts the predictions after SEP fully (the persona's voice, given what the
friend said) and the context's at `context_loss_weight`. Openers have an empty context.
With `attention_dim`, every position also reads a mix of the context's token states
(`ContextAttention`): a reply token sees the whole context, a context token what came
before it; base v3 carried the context in one recurrent state and used ~4 of a reply's
~136 bits from it.

Two kinds of tokens (`ModelConfig.tokens`):
- "pieces": the subword vocabulary of the shipped base model (`mimical.model.tokenizer`),
  which `mimical train` fine-tunes by default (`mimical.model.base`);
- "chars": the Unicode code points seen at least `min_char_count` times in one persona's
  corpus, for a small network learned from scratch (`--from-scratch`, the tests' tiny
  model). In the graph that is `unicode_decode`, a `searchsorted` and `unicode_encode`.

Try it: `python -m mimical.model.train corpus.jsonl /tmp/models` trains and exports.
"""

from __future__ import annotations

import collections
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

from mimical.corpus.schema import PLACEHOLDERS

# Token ids below FIRST_CHAR_ID are special; characters (or byte pieces) follow.
PAD, UNK, SEP, EOT = 0, 1, 2, 3
FIRST_CHAR_ID = 4
# The `temperature` a client sends by default: 1 samples the persona's calibrated
# distribution (see ModelConfig.temperature), below 1 is more predictable, 0 greedy.
DEFAULT_TEMPERATURE = 1.0
# Hard cap on one generated reply, whatever the client asks for.
MAX_REPLY_CHARS = 1000
# Steps per iteration of the in-graph loops: fewer iterations, less loop overhead.
UNROLL = 4
URL_PLACEHOLDER = re.compile(r"<URL:[^>]*>")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the network and its decoding; saved with every model.

    The defaults are the character model learned from scratch on one persona.
    """

    tokens: str = "chars"  # "chars" or "pieces" (see the module docstring)
    embedding_dim: int = 64
    # GRU width. Measured on the demo persona, 4 minutes on 2 shared CPU cores: 512 and
    # 384 units get through too few epochs (1.95 held-out bits/char); 256 reaches 1.84,
    # and its recurrent kernel stays in cache: a 100-character reply takes ~5 ms, not ~25.
    units: int = 256
    layers: int = 1
    # Dropout on each GRU layer's output. Without it the demo persona overfits after 5
    # epochs (held-out 1.93 bits/char, early stop); with 0.2 it is still improving at
    # the 5-minute limit (1.86), and it recites fewer training phrases.
    dropout: float = 0.2
    # A linear bottleneck between the GRU and the logits (0: none): with many tokens,
    # units × vocabulary would cost more than the GRU itself.
    projection_dim: int = 0
    # Attention over the context (base v4): at every step the network also reads a mix of
    # the context's token states, weighted by how well each matches the step's own state
    # (`attention_heads` heads of `attention_dim // attention_heads`), so the friend's
    # words reach the reply directly instead of through one recurrent state that forgets
    # them. 0: none (base v3 and the character model).
    attention_dim: int = 0
    attention_heads: int = 4
    context_chars: int = 64  # how much of the friend's text the model reads...
    context_tokens: int = 64  # ...and at most this many of its tokens
    reply_tokens: int = 160  # longer replies are cut (without EOT) when training
    min_char_count: int = 3  # rarer characters become UNK ("chars" only)
    # Also learn to predict the friend's text, at this weight: more signal per step, and
    # the persona's replies alone are too few characters for a network not to overfit.
    context_loss_weight: float = 1.0
    # A contrastive loss that makes the network read the conversation: for a quarter of
    # each batch, the reply after another row's context must be less likely than after
    # its own by `contrast_margin` nats per token (logistic loss on the gap, weighted
    # `contrast_weight`; 0: off). The gap is what `mimical.model.evaluate.context_use`
    # measures on held-out people.
    contrast_weight: float = 0.0
    contrast_margin: float = 0.3
    # Decoding (see the module docstring). Sampling stays close to the learned
    # distribution: truncation (top-k, nucleus) removes the rare words, typos and long
    # turns that make a person recognisable (Ippolito et al. 2020).
    candidates: int = 1
    top_k: int = 100
    top_p: float = 0.98
    # Choose among candidates by mutual information with the context (True), or take the
    # first that passes the verbatim guard (False: plain sampling, and no retrieval).
    rerank: bool = True
    anti_lm_weight: float = 0.5
    # The person's own replies retrieved as candidates beside the sampled ones
    # (`mimical.model.retrieval`); 0: none.
    retrieved: int = 2
    # Calibration, fitted per persona on the validation conversations
    # (`mimical.model.calibrate`) and exported as variables: a temperature the client's
    # is multiplied by, logit biases on the end of the turn and on line breaks, and a
    # bias on retrieved candidates' scores, so that turns come out as long, in as many
    # lines and as often with an emoji as the person's.
    temperature: float = 1.0
    end_bias: float = 0.0
    newline_bias: float = 0.0
    emoji_bias: float = 0.0  # on every token that writes an emoji (`emoji_token_ids`)
    retrieval_bias: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


# What a fine-tuned persona takes from today's defaults rather than from its base.
DECODING_FIELDS = ("candidates", "top_k", "top_p", "rerank", "anti_lm_weight", "retrieved")


@dataclass(frozen=True)
class Vocabulary:
    """Sorted Unicode code points; character `chr(codepoints[i])` has id FIRST_CHAR_ID + i."""

    codepoints: tuple[int, ...]

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> Vocabulary:
        counts = collections.Counter()
        for text in texts:
            counts.update(text)
        return cls(tuple(sorted(ord(c) for c, n in counts.items() if n >= min_count)))

    @property
    def size(self) -> int:
        return FIRST_CHAR_ID + len(self.codepoints)

    def encode(self, text: str) -> list[int]:
        ids = self._ids
        return [ids.get(ord(c), UNK) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(chr(self.codepoints[i - FIRST_CHAR_ID]) for i in ids if i >= FIRST_CHAR_ID)

    @functools.cached_property
    def _ids(self) -> dict[int, int]:
        return {cp: FIRST_CHAR_ID + i for i, cp in enumerate(self.codepoints)}

    def to_json(self) -> str:
        return json.dumps({"codepoints": list(self.codepoints)})

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        return cls(tuple(json.loads(text)["codepoints"]))


def example_tokens(tokenizer, config: ModelConfig, context: str, reply: str) -> list[int]:
    """The token sequence of one (context → reply) example; see the module docstring."""
    context = context[-config.context_chars :] if config.context_chars else ""
    context_ids = tokenizer.encode(context)[-config.context_tokens :] if context else []
    # A reply's link is never written (its host neither): one placeholder token, no loss.
    reply_ids = tokenizer.encode(URL_PLACEHOLDER.sub(PLACEHOLDERS[-1], reply))
    end = [EOT] if len(reply_ids) <= config.reply_tokens else []
    return [*context_ids, SEP, *reply_ids[: config.reply_tokens], *end]


def build_keras_model(config: ModelConfig, vocab_size: int):
    """Embedding → GRU × layers (→ attention over the context) → logits over the
    vocabulary, for (B, T) token ids."""
    import keras

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding")(ids)
    for layer in range(config.layers):
        # Default activations and reset_after=True: the cuDNN kernel on GPU, and the
        # exact math ReplyGenerator reimplements with plain ops.
        x = keras.layers.GRU(config.units, return_sequences=True, name=f"gru_{layer}")(x)
        x = keras.layers.Dropout(config.dropout)(x)
    if config.attention_dim:
        attention = _context_attention_class()(
            config.attention_dim, config.attention_heads, name="attention"
        )
        x = keras.layers.Concatenate()([x, attention([x, ids])])  # (B, T, U + D)
    if config.projection_dim:
        x = keras.layers.Dense(config.projection_dim, name="projection")(x)  # (B, T, P)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)  # (B, T, V)
    return keras.Model(ids, logits, name="persona")


def network_weights(keras_model, config: ModelConfig) -> dict:
    """The Keras model's weights by the names `ReplyGenerator` and the base artifact use."""
    weights = {"embedding": keras_model.get_layer("embedding").embeddings.numpy()}
    for layer in range(config.layers):
        kernel, recurrent_kernel, bias = keras_model.get_layer(f"gru_{layer}").weights
        weights[f"gru_{layer}_kernel"] = kernel.numpy()
        weights[f"gru_{layer}_recurrent_kernel"] = recurrent_kernel.numpy()
        weights[f"gru_{layer}_bias"] = bias.numpy()
    if config.projection_dim:
        weights["projection_kernel"] = keras_model.get_layer("projection").kernel.numpy()
        weights["projection_bias"] = keras_model.get_layer("projection").bias.numpy()
    if config.attention_dim:
        for part, variable in zip(
            ATTENTION_PARTS, keras_model.get_layer("attention").weights, strict=True
        ):
            weights[f"attention_{part}"] = variable.numpy()
    weights["logits_kernel"] = keras_model.get_layer("logits").kernel.numpy()
    weights["logits_bias"] = keras_model.get_layer("logits").bias.numpy()
    return weights


def load_network_weights(keras_model, config: ModelConfig, weights: dict) -> None:
    """The inverse of `network_weights`: fine-tuning starts from the base's weights."""
    keras_model.get_layer("embedding").embeddings.assign(weights["embedding"])
    for layer in range(config.layers):
        gru = keras_model.get_layer(f"gru_{layer}").weights
        for variable, part in zip(gru, ("kernel", "recurrent_kernel", "bias"), strict=True):
            variable.assign(weights[f"gru_{layer}_{part}"])
    if config.projection_dim:
        keras_model.get_layer("projection").kernel.assign(weights["projection_kernel"])
        keras_model.get_layer("projection").bias.assign(weights["projection_bias"])
    if config.attention_dim:
        for part, variable in zip(
            ATTENTION_PARTS, keras_model.get_layer("attention").weights, strict=True
        ):
            variable.assign(weights[f"attention_{part}"])
    keras_model.get_layer("logits").kernel.assign(weights["logits_kernel"])
    keras_model.get_layer("logits").bias.assign(weights["logits_bias"])


# The attention's kernels, in the order of its Keras weights: (units, attention_dim) each.
ATTENTION_PARTS = ("query", "key", "value")


@functools.cache
def _context_attention_class():
    """Define ContextAttention lazily so importing this module does not import Keras."""
    import keras
    from keras import ops

    class ContextAttention(keras.layers.Layer):
        """Multi-head attention of every position over the context's token states.

        Inputs: the GRU's states (B, T, U) and the token ids (B, T). Position t reads the
        states s ≤ min(t, sep), sep being where SEP is: a reply token sees the whole
        context and the SEP state (an opener sees SEP alone), a context token only what
        came before it, as a language model must. `ReplyGenerator.attend` is the same
        math for one step.
        """

        def __init__(self, dim: int, heads: int, **kwargs):
            super().__init__(**kwargs)
            self.dim, self.heads = dim, heads

        def build(self, input_shape):
            units = input_shape[0][-1]
            for part in ATTENTION_PARTS:
                setattr(self, part, self.add_weight(name=part, shape=(units, self.dim)))

        def call(self, inputs):
            states, ids = inputs
            batch, steps = ops.shape(ids)[0], ops.shape(ids)[1]
            head = self.dim // self.heads

            def heads(kernel):  # (B, T, U) → (B, H, T, head)
                x = ops.reshape(ops.matmul(states, kernel), (batch, steps, self.heads, head))
                return ops.transpose(x, (0, 2, 1, 3))

            query, key, value = heads(self.query), heads(self.key), heads(self.value)
            scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2))) / head**0.5
            positions = ops.arange(steps, dtype="int32")
            sep = ops.cast(ops.argmax(ops.cast(ops.equal(ids, SEP), "int32"), axis=1), "int32")
            last = ops.minimum(positions[None, :], sep[:, None])  # (B, T): the last key
            allowed = positions[None, None, :] <= last[:, :, None]  # (B, T, T)
            scores = ops.where(allowed[:, None], scores, -1e9)
            mixed = ops.matmul(ops.softmax(scores, axis=-1), value)  # (B, H, T, head)
            return ops.reshape(ops.transpose(mixed, (0, 2, 1, 3)), (batch, steps, self.dim))

        def get_config(self):
            return {**super().get_config(), "dim": self.dim, "heads": self.heads}

    return ContextAttention


# A reply repeating this many words of a training message in a row is a recital.
VERBATIM_WORDS = 6
SPAN_BUCKETS = 2**62


def word_spans(texts):
    """Fingerprints (int64) of every VERBATIM_WORDS-word span of each text: (B, None) ragged.

    Words are runs of letters, digits, `_` and `'`, lowercased, as `mimical evaluate`'s
    verbatim rate counts them; the same TensorFlow ops at export and in the graph.
    """
    import tensorflow as tf

    words = tf.strings.split(
        tf.strings.strip(tf.strings.regex_replace(tf.strings.lower(texts), r"[^\w']+", " "))
    )
    spans = tf.strings.ngrams(words, VERBATIM_WORDS, separator=" ")
    return tf.strings.to_hash_bucket_fast(spans, SPAN_BUCKETS)


def span_fingerprints(messages: list[str]) -> list[int]:
    """The distinct span fingerprints of `messages` (each message on its own)."""
    import numpy as np
    import tensorflow as tf

    found = set()
    for start in range(0, len(messages), 4096):
        found.update(word_spans(tf.constant(messages[start : start + 4096])).flat_values.numpy())
    return sorted(int(f) for f in np.asarray(list(found), dtype=np.int64))


def span_table(fingerprints):
    """Span fingerprint → 1, for `ReplyGenerator.recites` (fingerprints are ≥ 0, so the
    placeholder -1 of an empty table matches nothing)."""
    import tensorflow as tf

    keys = tf.constant(list(fingerprints) or [-1], tf.int64)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.int32)), default_value=0
    )

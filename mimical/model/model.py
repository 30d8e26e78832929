"""The persona model: a GRU language model that reads a context and writes a reply.

One file, top to bottom: the character vocabulary, the config dataclass, the Keras model
that training fits, and `ReplyGenerator`, the same weights as plain TensorFlow ops with
the whole reply path in one graph (tokenize → read the context → sample candidates →
rerank → detokenize), which is what gets exported for TensorFlow Serving.

A training example is one token sequence:

    [context tokens (of its last `context_chars`, at most `context_tokens`)] SEP [reply] EOT

The loss counts the predictions after SEP fully (the persona's voice, given what the
friend said) and the context's at `context_loss_weight`. Openers have an empty context.

Two kinds of tokens (`ModelConfig.tokens`):
- "pieces": the subword vocabulary of the shipped base model (`mimical.model.tokenizer`),
  which `mimical train` fine-tunes by default (`mimical.model.base`);
- "chars": the Unicode code points seen at least `min_char_count` times in one persona's
  corpus, for a small network learned from scratch (`--from-scratch`, the tests' tiny
  model). In the graph that is `unicode_decode`, a `searchsorted` and `unicode_encode`.

Decoding: `candidates` replies per request are sampled as one batch, close to the
learned distribution (temperature 1, a wide top-k and nucleus: truncation is what makes
generated text easy to tell from a person's), with the persona's calibrated end-of-turn
and line-break biases (`mimical.model.calibrate`). Beside them, `retrieved` of the
person's own replies, found by the friend's latest message (`mimical.model.retrieval`),
are read through the same network with their tokens forced. Every candidate gets its
length-normalised log p(reply | context) − `anti_lm_weight` · log p(reply): maximum
mutual information (Li et al. 2016) against bland replies that fit any context; the best
is returned. log p(reply) comes from the same network read as a language model of chat
text (what it learnt from the context positions), from its start state; not from the
opener state after a lone SEP, which would favour whatever a person does not open chats
with. Those rows run in the same batch as the candidates, so both terms cost one loop.
The verbatim guards: a sampled candidate repeating 6 words of the person's training
messages loses to any that does not; one repeating 6 words of anybody else's is refused.

Try it: `python -m mimical.model.train corpus.jsonl /tmp/models` trains and exports.
"""

from __future__ import annotations

import collections
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

from mimical.corpus.schema import OTHER_TURN, OWN_TURN, PLACEHOLDERS

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


def reply_generator(
    weights: dict, tokenizer, config: ModelConfig, spans=(), others_spans=(), retrieval=None
):
    """A `ReplyGenerator` (tf.Module) over `weights` (see `network_weights`).

    `spans`: fingerprints (`span_fingerprints`) of the person's own training messages,
    which a sampled reply should not repeat; `others_spans`: of other people's, which no
    reply may repeat. `retrieval`: the in-graph search of the person's replies that may be
    reused (`mimical.model.retrieval.graph_retrieval`), or None; used only when
    `config.rerank` (plain sampling takes the first candidate).
    """
    return _reply_generator_class()(weights, tokenizer, config, spans, others_spans, retrieval)


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


def emoji_token_ids(tokenizer) -> list[int]:
    """The tokens that write an emoji: characters or pieces holding one, and the lead byte
    of four-byte characters, where an emoji that no piece covers starts."""
    from mimical.model.tokenizer import FOUR_BYTE_LEAD, SPECIAL_TOKENS, has_emoji, is_emoji

    if isinstance(tokenizer, Vocabulary):
        return [
            FIRST_CHAR_ID + i
            for i, codepoint in enumerate(tokenizer.codepoints)
            if is_emoji(chr(codepoint))
        ]
    return [
        SPECIAL_TOKENS + i
        for i, piece in enumerate(tokenizer.pieces)
        if piece == FOUR_BYTE_LEAD or has_emoji(piece.decode("utf-8", errors="ignore"))
    ]


def graph_tokens(tokenizer):
    """The in-graph twin of a `Vocabulary` or a subword `Tokenizer`."""
    if isinstance(tokenizer, Vocabulary):
        return _graph_vocabulary_class()(tokenizer)
    from mimical.model.tokenizer import graph_tokenizer

    return graph_tokenizer(tokenizer)


@functools.cache
def _graph_vocabulary_class():
    import tensorflow as tf

    class GraphVocabulary(tf.Module):
        """`Vocabulary.encode`/`decode` with core ops, same interface as GraphTokenizer."""

        def __init__(self, vocab: Vocabulary):
            super().__init__(name="vocabulary")
            self.codepoints = tf.constant(vocab.codepoints or (0,), dtype=tf.int32)
            # id → code point; specials decode to nothing because replies are cut at EOT.
            self.id_to_codepoint = tf.constant((0,) * FIRST_CHAR_ID + vocab.codepoints, tf.int32)
            self.token_chars = tf.constant([0] * FIRST_CHAR_ID + [1] * len(vocab.codepoints))

        def encode(self, texts):
            chars = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
            flat = chars.flat_values
            index = tf.minimum(tf.searchsorted(self.codepoints, flat), tf.size(self.codepoints) - 1)
            known = tf.equal(tf.gather(self.codepoints, index), flat)
            ragged = chars.with_flat_values(tf.where(known, index + FIRST_CHAR_ID, UNK))
            return ragged.to_tensor(default_value=PAD), tf.cast(ragged.row_lengths(), tf.int32)

        def decode(self, ids, lengths):
            chars = tf.RaggedTensor.from_tensor(
                tf.gather(self.id_to_codepoint, ids), lengths=lengths
            )
            return tf.strings.unicode_encode(chars, "UTF-8")

    return GraphVocabulary


@functools.cache
def _reply_generator_class():
    """Define ReplyGenerator lazily so importing this module does not import TensorFlow."""
    import tensorflow as tf

    class ReplyGenerator(tf.Module):
        """The trained weights as tf.Variables plus the in-graph reply path.

        Only core ops (MatMul, Sigmoid, While, TopKV2, LookupTableFindV2, Substr, ...),
        so stock `tensorflow_model_server` can run the exported `reply` signature.
        """

        def __init__(self, weights, tokenizer, config: ModelConfig, spans, others_spans, retrieval):
            from mimical.model.tokenizer import placeholder_ids

            super().__init__(name="persona")
            self.own_spans = span_table(spans)
            self.others_spans = span_table(others_spans)
            self.retrieval = retrieval if config.rerank else None
            self.config = config
            # The calibration (see ModelConfig): variables, so the SavedModel carries them.
            self.temperature = tf.Variable(config.temperature, trainable=False)
            self.end_bias = tf.Variable(config.end_bias, trainable=False)
            self.newline_bias = tf.Variable(config.newline_bias, trainable=False)
            self.emoji_bias = tf.Variable(config.emoji_bias, trainable=False)
            self.retrieval_bias = tf.Variable(config.retrieval_bias, trainable=False)
            newline = tokenizer.encode("\n")
            self.end_mask = tf.one_hot(EOT, tokenizer.size)
            self.newline_mask = tf.reduce_sum(tf.one_hot(newline[:1], tokenizer.size), axis=0)
            self.emoji_mask = tf.reduce_sum(
                tf.one_hot(emoji_token_ids(tokenizer), tokenizer.size), axis=0
            )
            self.tokens = graph_tokens(tokenizer)
            self.vocab_size = tokenizer.size
            self.embedding = tf.Variable(weights["embedding"], dtype=tf.float32)
            self.gru = [
                tuple(
                    tf.Variable(weights[f"gru_{layer}_{part}"], dtype=tf.float32)
                    for part in ("kernel", "recurrent_kernel", "bias")
                )
                for layer in range(config.layers)
            ]
            if config.projection_dim:
                self.projection_kernel = tf.Variable(weights["projection_kernel"], dtype=tf.float32)
                self.projection_bias = tf.Variable(weights["projection_bias"], dtype=tf.float32)
            self.logits_kernel = tf.Variable(weights["logits_kernel"], dtype=tf.float32)
            self.logits_bias = tf.Variable(weights["logits_bias"], dtype=tf.float32)
            # (query, key, value) kernels, or none (a model without attention).
            self.attention = tuple(
                tf.Variable(weights[f"attention_{part}"], dtype=tf.float32)
                for part in (ATTENTION_PARTS if config.attention_dim else ())
            )
            # The first layer's input projection of every token, precomputed: one gather
            # per step instead of a gather and a matmul (the loop is latency-bound).
            kernel, _, bias = self.gru[0]
            self.input_table = tf.Variable(tf.matmul(self.embedding, kernel) + bias[0])  # (V, 3U)
            # Sampling never emits padding, UNK, SEP, a turn marker (a reply is one turn:
            # a marker in it would read as the friend's or the persona's next turn) or a
            # scrubber's placeholder (personal data is never invented).
            never = {PAD, UNK, SEP, *tokenizer.encode(OWN_TURN), *tokenizer.encode(OTHER_TURN)}
            never.update(placeholder_ids(tokenizer))
            self.forbidden = tf.constant(
                [-1e9 if i in never else 0.0 for i in range(self.vocab_size)]
            )

        def initial_state(self, batch):
            return [tf.zeros([batch, self.config.units]) for _ in range(self.config.layers)]

        def advance(self, ids, states):
            """Feed one token per row: (B,) ids, [(B, U)] states → the next states."""
            projected = tf.gather(self.input_table, ids)  # (B, 3U)
            new_states = []
            for layer, ((kernel, recurrent_kernel, bias), h) in enumerate(
                zip(self.gru, states, strict=True)
            ):
                if layer:
                    projected = tf.matmul(new_states[-1], kernel) + bias[0]
                x_z, x_r, x_h = tf.split(projected, 3, axis=-1)
                r_z, r_r, r_h = tf.split(tf.matmul(h, recurrent_kernel) + bias[1], 3, axis=-1)
                z = tf.sigmoid(x_z + r_z)
                r = tf.sigmoid(x_r + r_r)
                candidate = tf.tanh(x_h + r * r_h)
                new_states.append(z * h + (1.0 - z) * candidate)  # (B, U)
            return new_states

        def recites(self, texts, table=None):
            """(B,) bool: the text repeats a word span of a training message (of the
            person's own by default; `self.others_spans`: of other people's)."""
            table = self.own_spans if table is None else table
            spans = word_spans(texts)  # (B, None)
            found = spans.with_flat_values(table.lookup(spans.flat_values))
            return tf.reduce_max(found, axis=1) > 0  # an empty row's max is the lowest int

        def attend(self, h, memory):
            """(N, U) states → (N, attention_dim): `ContextAttention` for one step.

            `memory` is (keys, values, mask): (N, M, D), (N, M, D) and (N, M) bool; rows
            with nothing to read (all masked) get a uniform mix of zeros.
            """
            keys, values, mask = memory
            heads = self.config.attention_heads
            head = self.config.attention_dim // heads
            rows, slots = tf.shape(keys)[0], tf.shape(keys)[1]
            query = tf.reshape(tf.matmul(h, self.attention[0]), [rows, 1, heads, head])
            keys = tf.reshape(keys, [rows, slots, heads, head])
            scores = tf.reduce_sum(query * keys, axis=-1) / head**0.5  # (N, M, H)
            scores = tf.where(mask[:, :, None], scores, -1e9)
            weights = tf.nn.softmax(scores, axis=1)[:, :, :, None]
            mixed = tf.reduce_sum(weights * tf.reshape(values, [rows, slots, heads, head]), 1)
            return tf.reshape(mixed, [rows, self.config.attention_dim])

        def memory_of(self, states, mask):
            """(keys, values, mask) for `attend` from (N, M, U) states and their mask."""
            rows, slots = tf.shape(states)[0], tf.shape(states)[1]
            flat = tf.reshape(states, [rows * slots, self.config.units])
            keys, values = (
                tf.reshape(tf.matmul(flat, kernel), [rows, slots, self.config.attention_dim])
                for kernel in self.attention[1:]
            )
            return keys, values, mask

        def logits(self, states, memory=()):
            x = states[-1]
            if self.attention:
                x = tf.concat([x, self.attend(x, memory)], axis=-1)
            if self.config.projection_dim:
                x = tf.matmul(x, self.projection_kernel) + self.projection_bias  # (B, P)
            return tf.matmul(x, self.logits_kernel) + self.logits_bias  # (B, V)

        def read_context(self, context):
            """Run the GRU over each row's context tokens, then SEP: where a reply starts.

            Returns the states after SEP and what attention reads (`memory_of` the last
            layer's state after each context token and after SEP; () without
            attention). The same cut as `example_tokens`: the last `context_chars`
            characters, then at most the last `context_tokens` of their tokens.
            """
            chars = tf.strings.length(context, unit="UTF8_CHAR")
            keep = tf.minimum(chars, self.config.context_chars)
            context = tf.strings.substr(context, chars - keep, keep, unit="UTF8_CHAR")
            ids, lengths = self.tokens.encode(context)  # (B, T), (B,)
            start = tf.maximum(lengths - self.config.context_tokens, 0)
            lengths -= start
            batch = tf.shape(ids)[0]
            # Pad so that every row can read whole unrolled iterations from its start.
            ids = tf.pad(ids, [[0, 0], [0, UNROLL]])

            def read_steps(t, states, seen):
                for k in range(UNROLL):
                    token = tf.gather(ids, start + t + k, batch_dims=1)  # (B,)
                    new_states = self.advance(token, states)
                    still_reading = (t + k < lengths)[:, None]  # shorter rows keep their state
                    states = [
                        tf.where(still_reading, n, s)
                        for n, s in zip(new_states, states, strict=True)
                    ]
                    seen = seen.write(t + k, states[-1]) if self.attention else seen
                return t + UNROLL, states, seen

            _, states, seen = tf.while_loop(
                # At least one step, so that the array of states seen is never empty.
                lambda t, *_: (t < tf.reduce_max(lengths)) | tf.equal(t, 0),
                read_steps,
                (
                    tf.constant(0),
                    self.initial_state(batch),
                    tf.TensorArray(
                        tf.float32, size=0, dynamic_size=True, element_shape=[None, None]
                    ),
                ),
            )
            states = self.advance(tf.fill([batch], SEP), states)
            if not self.attention:
                return states, ()
            seen = tf.transpose(seen.stack(), [1, 0, 2])  # (B, T', U)
            seen = tf.concat([seen, states[-1][:, None]], axis=1)  # and the state after SEP
            read = tf.range(tf.shape(seen)[1] - 1)[None, :] < lengths[:, None]
            mask = tf.concat([read, tf.ones([batch, 1], tf.bool)], axis=1)
            return states, self.memory_of(seen, mask)

        def sampling_memory(self, context_memory, per_context: int):
            """What the sampler's rows attend to: the candidate rows their context's
            memory (repeated per candidate), then a ring of `context_tokens` empty slots
            that the language-model rows fill with their own states as they read the
            reply (`remember_text`): those rows read it as chat text, like the context
            positions in training, which attend to the text before them."""
            if not self.attention:
                return ()
            window = self.config.context_tokens
            keys, values, mask = (tf.repeat(m, per_context, axis=0) for m in context_memory)
            rows, slots = tf.shape(keys)[0], tf.shape(keys)[1]

            def stack(candidate_part, language_model_part):
                return tf.concat([candidate_part, language_model_part], axis=0)

            empty = tf.zeros([rows, window, self.config.attention_dim])
            ring = tf.zeros([rows, slots + window, self.config.attention_dim])
            keys = stack(tf.concat([keys, empty], 1), ring)
            values = stack(tf.concat([values, empty], 1), ring)
            closed = tf.zeros([rows, window], tf.bool)
            mask = stack(tf.concat([mask, closed], 1), tf.zeros([rows, slots + window], tf.bool))
            return keys, values, mask

        def remember_text(self, memory, h, step):
            """Write the language-model rows' state `h` (the second half of the rows)
            into their ring slot for `step`."""
            if not self.attention:
                return memory
            keys, values, mask = memory
            rows, slots = tf.shape(keys)[0] // 2, tf.shape(keys)[1]
            window = self.config.context_tokens
            slot = tf.one_hot(slots - window + step % window, slots, on_value=True, off_value=False)
            lm_row = tf.range(2 * rows) >= rows
            write = lm_row[:, None] & slot[None, :]  # (2R, M)
            new_keys, new_values, _ = self.memory_of(h[:, None], tf.ones_like(write[:, :1]))
            return (
                tf.where(write[:, :, None], new_keys, keys),
                tf.where(write[:, :, None], new_values, values),
                mask | write,
            )

        def forced_tokens(self, retrieved, sampled: int):
            """The tokens each row must take: none (PAD) for the `sampled` rows of each
            context, then each retrieved reply's tokens and EOT: (B·(sampled + k), T)."""
            batch, k = tf.shape(retrieved)[0], tf.shape(retrieved)[1]
            ids, lengths = self.tokens.encode(tf.reshape(retrieved, [-1]))  # (B·k, T)
            ids = tf.pad(ids, [[0, 0], [0, 1]])
            ids = tf.tensor_scatter_nd_update(
                ids,
                tf.stack([tf.range(tf.shape(ids)[0]), lengths], axis=1),
                tf.fill([batch * k], EOT),
            )
            ids = tf.reshape(ids, [batch, k, -1])
            ids = tf.concat([tf.zeros([batch, sampled, tf.shape(ids)[2]], tf.int32), ids], 1)
            return tf.reshape(ids, [batch * (sampled + k), -1])

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="context"),
                tf.TensorSpec([None], tf.float32, name="temperature"),
                tf.TensorSpec([None], tf.int32, name="max_chars"),
                tf.TensorSpec([None], tf.int64, name="seed"),
            ]
        )
        def reply(self, context, temperature, max_chars, seed):
            """One reply per row, until EOT or `max_chars`; temperature ≤ 0 is greedy.

            Candidate c of context b is row b·(n + k) + c: n sampled, then k retrieved
            (the person's own replies, their tokens forced). `retrieved` says which won.
            """
            config, n = self.config, self.config.candidates
            k = self.retrieval.k if self.retrieval is not None else 0
            top_k = min(config.top_k, self.vocab_size)  # a small character vocabulary
            per_context = n + k
            batch = tf.shape(context)[0]
            rows = batch * per_context
            max_chars = tf.clip_by_value(max_chars, 0, MAX_REPLY_CHARS)
            # Rows with the context, then the language-model rows in the same batch: the
            # reply read as chat text from the start state, with nothing before it (as
            # the context positions were trained), for log p(reply) without a context.
            context_states, context_memory = self.read_context(context)
            with_context = [tf.repeat(s, per_context, axis=0) for s in context_states]
            states = [tf.concat([s, tf.zeros_like(s)], 0) for s in with_context]
            memory = self.sampling_memory(context_memory, per_context)
            row_max_chars = tf.repeat(max_chars, per_context)
            scale = tf.repeat(temperature, per_context)[:, None] * self.temperature
            greedy = scale <= 0.0
            scale = tf.where(greedy, 1.0, scale)
            # One token per character at most (a piece is ≥ 1 byte): the step budget.
            steps = tf.reduce_max(tf.concat([max_chars, [1]], 0))
            steps += -steps % UNROLL
            if k:
                similarity, retrieved = self.retrieval.top(context)  # (B, k)
                forced = self.forced_tokens(retrieved, n)
                # A retrieved reply sharing no word with the friend's message is no answer.
                unmatched = tf.reshape(
                    tf.concat([tf.zeros([batch, n]), tf.cast(similarity <= 0.0, tf.float32)], 1),
                    [rows],
                )
            else:
                forced = tf.zeros([rows, 1], tf.int32)
                unmatched = tf.zeros([rows])
            is_forced = tf.tile(tf.range(per_context) >= n, [batch])  # (R,)
            forced = tf.pad(forced, [[0, 0], [0, tf.maximum(steps - tf.shape(forced)[1], 0)]])
            # Gumbel-max sampling among the top-k: noise drawn up front from each row's
            # own seed, so a reply depends only on its own inputs.
            uniform = tf.map_fn(
                lambda s: tf.random.stateless_uniform(
                    [per_context, steps, top_k], tf.stack([s, 0]), minval=1e-9, maxval=1.0
                ),
                seed,
                fn_output_signature=tf.float32,
            )  # (B, N + K, steps, top_k)
            gumbel = tf.reshape(-tf.math.log(-tf.math.log(uniform)), [rows, steps, top_k])
            gumbel = tf.where(greedy[:, :, None], 0.0, gumbel)
            # The calibration's biases shape what is sampled, not how candidates score.
            bias = (
                self.end_bias * self.end_mask
                + self.newline_bias * self.newline_mask
                + self.emoji_bias * self.emoji_mask
            )  # (V,)

            def sample_steps(t, states, memory, done, chars, lengths, log_p, log_p_text, tokens):
                for j in range(UNROLL):
                    log_probs = tf.nn.log_softmax(self.logits(states, memory) + self.forbidden)
                    conditional, unconditional = log_probs[:rows], log_probs[rows:]  # (R, V)
                    top, top_ids = tf.math.top_k(conditional + bias, top_k)  # (R, K)
                    tempered = top / scale
                    # The nucleus: the most likely tokens up to `top_p` of the mass.
                    before = tf.cumsum(tf.nn.softmax(tempered), axis=-1, exclusive=True)
                    tempered = tf.where(before < config.top_p, tempered, -1e9)
                    choice = tf.argmax(tempered + gumbel[:, t + j], axis=-1, output_type=tf.int32)
                    sampled = tf.gather(top_ids, choice, batch_dims=1)  # (R,)
                    token = tf.where(is_forced, forced[:, t + j], sampled)
                    counts = tf.cast(~done, tf.float32)
                    log_p += counts * tf.gather(conditional, token, batch_dims=1)
                    ended = tf.equal(token, EOT)
                    # The language model skips the end of a turn (not chat text) and the
                    # first token: from the start state any first token is a surprise,
                    # which would reward short replies, whose first token weighs most.
                    text_counts = counts * tf.cast(~ended & (lengths > 0), tf.float32)
                    log_p_text += text_counts * tf.gather(unconditional, token, batch_dims=1)
                    lengths += tf.cast(~done, tf.int32)
                    tokens = tokens.write(t + j, tf.where(done | ended, PAD, token))
                    chars += tf.where(done, 0, tf.gather(self.tokens.token_chars, token))
                    done = done | ended | (chars >= row_max_chars)
                    states = self.advance(tf.concat([token, token], 0), states)
                    memory = self.remember_text(memory, states[-1], t + j)
                return t + UNROLL, states, memory, done, chars, lengths, log_p, log_p_text, tokens

            zeros = tf.zeros([rows])
            _, _, _, _, _, lengths, log_p, log_p_text, tokens = tf.while_loop(
                # At least one step, so that the token array is never empty.
                lambda t, _s, _m, done, *_: (t < steps) & (~tf.reduce_all(done) | tf.equal(t, 0)),
                sample_steps,
                (
                    tf.constant(0),
                    states,
                    memory,
                    row_max_chars <= 0,
                    tf.zeros([rows], tf.int32),
                    tf.zeros([rows], tf.int32),
                    zeros,
                    zeros,
                    tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
                ),
            )
            tokens = tf.reshape(tf.transpose(tokens.stack()), [rows, -1])  # (R, T)
            # Tokens are only ever written before a row ends, so they are left-aligned.
            candidates = self.tokens.decode(tokens, tf.reduce_sum(tf.cast(tokens > 0, tf.int32), 1))
            if config.rerank:  # mutual information with the context, per token
                score = (log_p - config.anti_lm_weight * log_p_text) / tf.cast(
                    tf.maximum(lengths, 1), tf.float32
                )
            else:  # the first candidate the guards let through
                score = -tf.cast(tf.tile(tf.range(per_context), [batch]), tf.float32)
            # The verbatim guards: a sampled candidate repeating a span of the person's
            # training messages loses to any that does not; one repeating another
            # person's words, or a retrieved reply that matches nothing, is refused.
            score += tf.where(is_forced, self.retrieval_bias, 0.0)
            own = self.recites(candidates) & ~is_forced
            refused = self.recites(candidates, self.others_spans) | (unmatched > 0)
            score -= tf.where(own, 1e6, 0.0) + tf.where(refused, 1e9, 0.0)
            score = tf.reshape(score, [batch, per_context])
            best = tf.argmax(score, axis=1, output_type=tf.int32)
            text = tf.gather(candidates, tf.range(batch) * per_context + best)  # (B,)
            said = tf.reduce_max(score, axis=1) > -1e8  # else every candidate was refused
            text = tf.where(said, text, "")
            # The last piece may overshoot `max_chars`; the client asked for at most that.
            return {
                "reply": tf.strings.substr(
                    text, tf.zeros_like(max_chars), max_chars, unit="UTF8_CHAR"
                ),
                "retrieved": (best >= n) & said,
            }

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="context"),
                tf.TensorSpec([None], tf.string, name="reply"),
            ]
        )
        def score(self, context, reply):
            """Log-likelihood of each reply (its tokens, then EOT) given its context.

            Returns `nats` (B,) and `characters` (B,): the reply's characters plus one for
            the end of the turn, so that bits per character compare across tokenizers.
            """
            states, memory = self.read_context(context)
            targets, lengths = self.tokens.encode(reply)
            targets = tf.concat([targets, tf.zeros_like(targets[:, :1])], axis=1)
            lengths = lengths + 1  # the EOT ending the turn
            targets = tf.tensor_scatter_nd_update(
                targets,
                tf.stack([tf.range(tf.shape(targets)[0]), lengths - 1], axis=1),
                tf.fill(tf.shape(lengths), EOT),
            )

            def body(t, states, nats):
                target = targets[:, t]
                log_probs = tf.nn.log_softmax(self.logits(states, memory))
                picked = tf.gather(log_probs, target, batch_dims=1)  # (B,)
                nats = nats - tf.where(t < lengths, picked, 0.0)
                return t + 1, self.advance(target, states), nats

            _, _, nats = tf.while_loop(
                lambda t, *_: t < tf.shape(targets)[1],
                body,
                (tf.constant(0), states, tf.zeros(tf.shape(lengths), tf.float32)),
            )
            return {"nats": nats, "characters": tf.strings.length(reply, unit="UTF8_CHAR") + 1}

    return ReplyGenerator

"""The persona model: a character-level GRU that reads a context and writes a reply.

One file, top to bottom: the vocabulary, the config dataclass, the Keras model that
training fits, and `ReplyGenerator`, the same weights as plain TensorFlow ops with the
whole reply loop (tokenize → read context → sample until end-of-turn → detokenize)
in one graph, which is what gets exported for TensorFlow Serving.

A training example is one token sequence:

    [context characters (last `context_chars`)] SEP [reply characters] EOT

The loss counts the predictions after SEP fully (the persona's voice, given what the
friend said) and the context's at `context_loss_weight`. Openers have an empty context.

Why characters: chat text is short, misspelt and full of emoji. A vocabulary of the
Unicode code points seen at least `min_char_count` times (106 on the demo persona,
covering all but 0.001% of its characters) makes an emoji one token where bytes would
take four, so sampling can never emit half a character, and it needs no subword
training. In the graph it is just `unicode_decode`, a `searchsorted` over the sorted
code points, and `unicode_encode`. (Subwords would shorten sequences ~3×, but their
tokenizer would have to run in the graph with core ops only.)

Try it: `python -m mimical.model.train corpus.jsonl /tmp/models` trains and exports.
"""

from __future__ import annotations

import collections
import functools
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

# Token ids below FIRST_CHAR_ID are special; characters follow in code point order.
PAD, UNK, SEP, EOT = 0, 1, 2, 3
FIRST_CHAR_ID = 4
# Hard cap on one generated reply, whatever the client asks for.
MAX_REPLY_CHARS = 1000
# Steps per iteration of the in-graph loops: fewer iterations, less loop overhead.
UNROLL = 4


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the network's shape; saved with every checkpoint."""

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
    context_chars: int = 64  # how much of the friend's text the model reads
    reply_chars: int = 160  # longer replies are cut (without EOT) when training
    min_char_count: int = 3  # rarer characters become UNK
    # Also learn to predict the friend's text, at this weight: more signal per step, and
    # the persona's replies alone are too few characters for a network not to overfit.
    context_loss_weight: float = 1.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls(**json.loads(text))


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


def example_tokens(vocab: Vocabulary, config: ModelConfig, context: str, reply: str) -> list[int]:
    """The token sequence of one (context → reply) example; see the module docstring."""
    context_ids = vocab.encode(context[-config.context_chars :]) if config.context_chars else []
    reply_ids = vocab.encode(reply[: config.reply_chars])
    end = [EOT] if len(reply) <= config.reply_chars else []
    return [*context_ids, SEP, *reply_ids, *end]


def build_keras_model(config: ModelConfig, vocab_size: int):
    """Embedding → GRU × layers → logits over the vocabulary, for (B, T) token ids."""
    import keras

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding")(ids)
    for layer in range(config.layers):
        # Default activations and reset_after=True: the cuDNN kernel on GPU, and the
        # exact math ReplyGenerator reimplements with plain ops.
        x = keras.layers.GRU(config.units, return_sequences=True, name=f"gru_{layer}")(x)
        x = keras.layers.Dropout(config.dropout)(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)  # (B, T, V)
    return keras.Model(ids, logits, name="persona")


def _reply_generator_class():
    """Define ReplyGenerator lazily so importing this module does not import TensorFlow."""
    import tensorflow as tf

    class ReplyGenerator(tf.Module):
        """The trained weights as tf.Variables plus an in-graph sampling loop.

        Only core ops (MatMul, Sigmoid, While, UnicodeDecode, LowerBound, ...), so stock
        `tensorflow_model_server` can run the exported `reply` signature.
        """

        def __init__(self, keras_model, vocab: Vocabulary, config: ModelConfig):
            super().__init__(name="persona")
            # The export describes itself: config and vocabulary travel with the weights.
            self.config_json = tf.constant(config.to_json())
            self.vocabulary_json = tf.constant(vocab.to_json())
            self.context_chars = config.context_chars
            self.layers = config.layers
            self.units = config.units
            self.vocab_size = vocab.size
            self.embedding = tf.Variable(keras_model.get_layer("embedding").embeddings)
            self.gru = []
            for layer in range(config.layers):
                kernel, recurrent_kernel, bias = keras_model.get_layer(f"gru_{layer}").weights
                self.gru.append(
                    (tf.Variable(kernel), tf.Variable(recurrent_kernel), tf.Variable(bias))
                )
            dense = keras_model.get_layer("logits")
            self.logits_kernel = tf.Variable(dense.kernel)
            self.logits_bias = tf.Variable(dense.bias)
            # The first layer's input projection of every token, precomputed: one gather
            # per step instead of a gather and a matmul (the loop is latency-bound).
            kernel, _, bias = self.gru[0]
            self.input_table = tf.Variable(tf.matmul(self.embedding, kernel) + bias[0])  # (V, 3U)
            self.codepoints = tf.constant(vocab.codepoints or (0,), dtype=tf.int32)
            # id → code point; specials decode to nothing because replies are cut at EOT.
            self.id_to_codepoint = tf.constant((0,) * FIRST_CHAR_ID + vocab.codepoints, tf.int32)
            # Sampling never emits padding, UNK or SEP.
            self.forbidden = tf.constant(
                [-1e9 if i in (PAD, UNK, SEP) else 0.0 for i in range(vocab.size)], tf.float32
            )

        def initial_state(self, batch):
            return [tf.zeros([batch, self.units]) for _ in range(self.layers)]

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

        def encode(self, texts, last_chars=None):
            """(B,) strings → (B, T) right-padded ids (of the last chars only), (B,) lengths."""
            chars = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
            if last_chars is not None:
                chars = chars[:, -last_chars:] if last_chars else chars[:, :0]
            flat = chars.flat_values
            index = tf.minimum(tf.searchsorted(self.codepoints, flat), tf.size(self.codepoints) - 1)
            known = tf.equal(tf.gather(self.codepoints, index), flat)
            ids = tf.where(known, index + FIRST_CHAR_ID, UNK)
            ragged = chars.with_flat_values(ids)
            return ragged.to_tensor(default_value=PAD), tf.cast(ragged.row_lengths(), tf.int32)

        def logits(self, states):
            return tf.matmul(states[-1], self.logits_kernel) + self.logits_bias  # (B, V)

        def read_context(self, context):
            """Run the GRU over each row's context and then SEP: the state a reply starts from."""
            ids, lengths = self.encode(context, self.context_chars)
            batch = tf.shape(ids)[0]
            # Pad to whole unrolled iterations; padding is masked like a short row's tail.
            ids = tf.pad(ids, [[0, 0], [0, -tf.shape(ids)[1] % UNROLL]])

            def read_steps(t, states):
                for k in range(UNROLL):
                    new_states = self.advance(ids[:, t + k], states)
                    still_reading = (t + k < lengths)[:, None]  # shorter rows keep their state
                    states = [
                        tf.where(still_reading, n, s)
                        for n, s in zip(new_states, states, strict=True)
                    ]
                return t + UNROLL, states

            _, states = tf.while_loop(
                lambda t, _: t < tf.shape(ids)[1],
                read_steps,
                (tf.constant(0), self.initial_state(batch)),
            )
            return self.advance(tf.fill([batch], SEP), states)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="context"),
                tf.TensorSpec([None], tf.float32, name="temperature"),
                tf.TensorSpec([None], tf.int32, name="max_chars"),
                tf.TensorSpec([None], tf.int64, name="seed"),
            ]
        )
        def reply(self, context, temperature, max_chars, seed):
            """Sample one reply per row until EOT or `max_chars`; temperature ≤ 0 is greedy."""
            states = self.read_context(context)
            batch = tf.shape(context)[0]
            max_chars = tf.clip_by_value(max_chars, 0, MAX_REPLY_CHARS)
            steps = tf.reduce_max(tf.concat([max_chars, [1]], 0))  # ≥ 1: one step ends all
            steps += -steps % UNROLL
            # Gumbel-max sampling: argmax(logits / T + g) = argmax(logits + T·g). The noise
            # is drawn up front from each row's own seed, so a reply depends only on its own
            # inputs; folding the bias and the forbidden tokens into it leaves one matmul
            # and one add per step before the argmax.
            uniform = tf.map_fn(
                lambda s: tf.random.stateless_uniform(
                    [steps, self.vocab_size], tf.stack([s, 0]), minval=1e-9, maxval=1.0
                ),
                seed,
                fn_output_signature=tf.float32,
            )  # (B, steps, V)
            gumbel = -tf.math.log(-tf.math.log(uniform))
            scale = tf.maximum(temperature, 0.0)[:, None, None]
            offsets = scale * gumbel + (self.logits_bias + self.forbidden)

            def sample_steps(t, states, done, lengths, tokens):
                for k in range(UNROLL):
                    scores = tf.matmul(states[-1], self.logits_kernel) + offsets[:, t + k]
                    token = tf.argmax(scores, axis=-1, output_type=tf.int32)  # (B,)
                    done = done | tf.equal(token, EOT) | (t + k >= max_chars)
                    lengths = lengths + tf.cast(~done, tf.int32)
                    tokens = tokens.write(t + k, token)
                    states = self.advance(token, states)
                return t + UNROLL, states, done, lengths, tokens

            _, _, _, lengths, tokens = tf.while_loop(
                lambda t, _s, done, _n, _a: (t < steps) & ~tf.reduce_all(done),
                sample_steps,
                (
                    tf.constant(0),
                    states,
                    tf.zeros([batch], tf.bool),
                    tf.zeros([batch], tf.int32),
                    tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
                ),
            )
            tokens = tf.transpose(tokens.stack())[:, : tf.reduce_max(lengths)]  # (B, T)
            tokens = tf.reshape(tokens, [batch, -1])
            chars = tf.RaggedTensor.from_tensor(
                tf.gather(self.id_to_codepoint, tokens), lengths=lengths
            )
            return {"reply": tf.strings.unicode_encode(chars, "UTF-8")}

        def reply_by_python_loop(self, context: str, max_chars: int) -> str:
            """Greedy reply with one Python call per token: the in-graph loop's reference.

            Tests check `reply` (temperature 0) against it; the benchmark times both.
            """
            states = self.read_context(tf.constant([context]))
            tokens = []
            for _ in range(max_chars):
                token = int(tf.argmax(self.logits(states)[0] + self.forbidden))
                if token == EOT:
                    break
                tokens.append(token)
                states = self.advance(tf.constant([token]), states)
            return "".join(chr(int(self.id_to_codepoint[t])) for t in tokens)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="context"),
                tf.TensorSpec([None], tf.string, name="reply"),
            ]
        )
        def score(self, context, reply):
            """Log-likelihood of each reply (its characters, then EOT) given its context.

            Returns `nats` (B,) and `tokens` (B,): evaluation divides one by the other.
            """
            states = self.read_context(context)
            targets, lengths = self.encode(reply)
            targets = tf.concat([targets, tf.zeros_like(targets[:, :1])], axis=1)
            lengths = lengths + 1  # the EOT ending the turn
            targets = tf.tensor_scatter_nd_update(
                targets,
                tf.stack([tf.range(tf.shape(targets)[0]), lengths - 1], axis=1),
                tf.fill(tf.shape(lengths), EOT),
            )

            def body(t, states, nats):
                target = targets[:, t]
                log_probs = tf.nn.log_softmax(self.logits(states))
                picked = tf.gather(log_probs, target, batch_dims=1)  # (B,)
                nats = nats - tf.where(t < lengths, picked, 0.0)
                return t + 1, self.advance(target, states), nats

            _, _, nats = tf.while_loop(
                lambda t, *_: t < tf.shape(targets)[1],
                body,
                (tf.constant(0), states, tf.zeros(tf.shape(lengths), tf.float32)),
            )
            return {"nats": nats, "tokens": lengths}

    return ReplyGenerator


def reply_generator(keras_model, vocab: Vocabulary, config: ModelConfig):
    """A `ReplyGenerator` (tf.Module) holding a copy of `keras_model`'s weights."""
    return _reply_generator_class()(keras_model, vocab, config)

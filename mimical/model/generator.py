"""The reply path as one TensorFlow graph: what an export serves.

`ReplyGenerator` holds the network's weights (`mimical.model.model.network_weights`) as
tf.Variables and does tokenize → read the context → sample candidates → rerank →
detokenize with core ops only, so stock `tensorflow_model_server` runs it.

Decoding: `candidates` replies per request are sampled as one batch, close to the
learned distribution (temperature 1, a wide top-k and nucleus: truncation is what makes
generated text easy to tell from a person's), with the persona's calibrated end-of-turn,
line-break and emoji biases (`mimical.model.calibrate`); padding, turn markers and the
scrubber's placeholders are never sampled. Beside them, `retrieved` of the person's own
replies, found by the friend's latest message (`mimical.model.retrieval`), are read
through the same network with their tokens forced. Every candidate gets its
length-normalised log p(reply | context) − `anti_lm_weight` · log p(reply): maximum
mutual information (Li et al. 2016) against bland replies that fit any context; the best
is returned. log p(reply) comes from the same network read as a language model of chat
text (what it learnt from the context positions: with attention, those rows attend over
their own states so far), from its start state; not from the opener state after a lone
SEP, which would favour whatever a person does not open chats with. Those rows run in the
same batch as the candidates, so both terms cost one loop. The verbatim guards: a
sampled candidate repeating 6 words of the person's training messages loses to any that
does not; one repeating 6 words of anybody else's is refused.
"""

from __future__ import annotations

import functools

from mimical.corpus.schema import OTHER_TURN, OWN_TURN
from mimical.model.model import (
    ATTENTION_PARTS,
    EOT,
    FIRST_CHAR_ID,
    MAX_REPLY_CHARS,
    PAD,
    SEP,
    UNK,
    UNROLL,
    ModelConfig,
    Vocabulary,
    span_table,
    word_spans,
)


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

"""The person's own replies as candidates: which ones may be reused, and how they are found.

A retrieved reply is a candidate beside the sampled ones, scored by the same network and
chosen by the same rule (`mimical.model.model`), so the persona answers with something
it really wrote when that fits better than anything it samples. Found by the friend's
latest message: TF-IDF over its words against the message each stored reply answered,
in the graph with core ops (a hash table from word to column, a sparse-dense `MatMul`,
`TopKV2`). Rows of one call that repeat a context (the suggestion endpoint asks for
several drafts at once) take successive ranks: the first reads the `k` best replies,
the second the next `k`, and so on, so that each row has candidates of its own and the
drafts differ (`GraphRetrieval.top`). Two chats that the model server batches together
with the same context ("hi") are rows of one call too: their replies differ as well,
each still a reply of the person's to a matching message or none.

Privacy decides what may be stored (`bank_replies`). A persona's replies are read by
whoever talks to it, so by default (`"public"`) only replies too short to tell anything
are reused: under VERBATIM_WORDS words, so that a public persona never says 6 words in a
row of any training message (a reply the person sent in several conversations is a
habit, but could still be an address). Never a reply with a scrubbed placeholder
(`<EMAIL>`, `<URL:…>`) or one quoting VERBATIM_WORDS words of another person's message.
The owner of a private persona may allow every reply of theirs (`"all"`,
`mimical train --retrieval all`), or none (`"off"`).
"""

from __future__ import annotations

import collections
import functools
import math
import re
from dataclasses import dataclass

from mimical.corpus.schema import MESSAGE_BREAK, PLACEHOLDER, Pair, context_messages
from mimical.model.model import VERBATIM_WORDS
from mimical.model.sense import word_ngrams

POLICIES = ("public", "all", "off")
# Bounds the graph's size: a sparse (replies × words) matrix and the strings.
MAX_REPLIES = 20000
# The words retrieval compares: letters, digits and apostrophes, lowercased (the same
# rule as the graph's `query_words`).
WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def latest_message(context: str) -> str:
    """What retrieval answers: the context's last message (the friend's latest)."""
    messages = context_messages(context)
    return messages[-1] if messages else ""


@dataclass(frozen=True)
class Bank:
    """Stored replies and the friend message each one answered (its query side)."""

    replies: tuple[str, ...] = ()
    queries: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.replies)


def bank_replies(train: list[Pair], policy: str = "public") -> Bank:
    """The training replies that may be reused under `policy` (see the module docstring)."""
    if policy not in POLICIES:
        raise ValueError(f"retrieval policy must be one of {POLICIES}, not {policy!r}")
    if policy == "off":
        return Bank()
    replies = {line for p in train for line in p.reply.split("\n")}
    others = set()
    for pair in train:
        for line in context_messages(pair.context):
            if line not in replies:
                others |= word_ngrams(line, VERBATIM_WORDS)
    kept: dict[tuple[str, str], None] = {}
    for pair in train:
        query = latest_message(pair.context)
        if (
            not words(query)
            or PLACEHOLDER.search(pair.reply)
            or word_ngrams(pair.reply, VERBATIM_WORDS) & others
        ):
            continue
        if policy == "all" or len(words(pair.reply)) < VERBATIM_WORDS:
            kept[query, pair.reply] = None
    chosen = list(kept)[-MAX_REPLIES:]  # the most recent, when there are too many
    return Bank(tuple(r for _, r in chosen), tuple(q for q, _ in chosen))


@dataclass(frozen=True)
class Index:
    """The bank as TF-IDF rows: `vocabulary[i]` is column i; rows are L2-normalised."""

    vocabulary: tuple[str, ...]
    idf: tuple[float, ...]
    rows: tuple[tuple[int, ...], ...]  # each query's columns, distinct
    weights: tuple[tuple[float, ...], ...]

    @classmethod
    def build(cls, queries: tuple[str, ...]) -> Index:
        columns = [sorted(set(words(q))) for q in queries]
        document_frequency = collections.Counter(w for ws in columns for w in ws)
        vocabulary = tuple(sorted(document_frequency))
        position = {w: i for i, w in enumerate(vocabulary)}
        idf = tuple(
            math.log((1 + len(queries)) / (1 + document_frequency[w])) + 1 for w in vocabulary
        )
        rows, weights = [], []
        for ws in columns:
            ids = tuple(position[w] for w in ws)
            norm = math.sqrt(sum(idf[i] ** 2 for i in ids)) or 1.0
            rows.append(ids)
            weights.append(tuple(idf[i] / norm for i in ids))
        return cls(vocabulary, idf, tuple(rows), tuple(weights))


def graph_retrieval(bank: Bank, k: int):
    """The in-graph retrieval of `k` replies over `bank` (a tf.Module), or None when there
    is nothing to retrieve."""
    return _graph_retrieval_class()(bank, k) if len(bank) and k else None


@functools.cache
def _graph_retrieval_class():
    import tensorflow as tf

    class GraphRetrieval(tf.Module):
        """`top(contexts)`: the `k` stored replies whose query best matches each context's
        latest message, with their cosine similarity (0: no word in common)."""

        def __init__(self, bank: Bank, k: int):
            super().__init__(name="retrieval")
            # A bank smaller than k is padded with empty replies that match nothing.
            padding = max(k - len(bank), 0)
            bank = Bank(bank.replies + ("",) * padding, bank.queries + ("",) * padding)
            self.k = k
            index = Index.build(bank.queries)
            self.replies = tf.Variable(list(bank.replies), dtype=tf.string, trainable=False)
            keys = tf.constant(list(index.vocabulary) or [""], tf.string)
            self.columns = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    keys, tf.range(tf.size(keys, out_type=tf.int64), dtype=tf.int64)
                ),
                default_value=-1,
            )
            self.idf = tf.Variable(list(index.idf) or [0.0], dtype=tf.float32, trainable=False)
            entries = [(r, c) for r, row in enumerate(index.rows) for c in row]
            self.entry_indices = tf.Variable(
                tf.constant(entries or [(0, 0)], tf.int64), trainable=False
            )
            self.entry_values = tf.Variable(
                [w for row in index.weights for w in row] or [0.0], trainable=False
            )
            self.shape = tf.constant([len(bank), max(len(index.vocabulary), 1)], tf.int64)

        def query_words(self, contexts):
            """The latest message's words per row: (B, None) ragged strings."""
            messages = tf.strings.regex_replace(contexts, MESSAGE_BREAK, "\n")
            lines = tf.strings.split(messages, sep="\n")
            latest = tf.gather(lines.values, lines.row_limits() - 1)
            cleaned = tf.strings.regex_replace(tf.strings.lower(latest), r"[^\w']+", " ")
            return tf.strings.split(tf.strings.strip(cleaned))

        def repeats(self, contexts):
            """(B,) int32: how many earlier rows of the batch have the same context."""
            _, group = tf.unique(contexts)
            row = tf.range(tf.size(group))
            earlier_same = tf.equal(group[:, None], group[None, :]) & (row[None, :] < row[:, None])
            return tf.reduce_sum(tf.cast(earlier_same, tf.int32), axis=1)

        def top(self, contexts):
            """(B, k) similarities and (B, k) replies (strings).

            A row whose context an earlier row of the batch repeats r times reads the
            replies ranked r·k to r·k + k − 1 (past the bank's end: empty, similarity 0).
            """
            found = self.query_words(contexts)
            columns = self.columns.lookup(found.flat_values)  # (W,) -1 for unknown words
            rows = tf.cast(found.value_rowids(), tf.int64)
            known = columns >= 0
            columns, rows = tf.boolean_mask(columns, known), tf.boolean_mask(rows, known)
            batch = tf.shape(contexts, out_type=tf.int64)[0]
            # Each word once per query, weighted by its idf, then the row normalised.
            query = tf.tensor_scatter_nd_max(
                tf.zeros(tf.stack([batch, self.shape[1]])),
                tf.stack([rows, columns], axis=1),
                tf.gather(self.idf, columns),
            )  # (B, V)
            query = tf.math.l2_normalize(query, axis=1)
            bank = tf.sparse.SparseTensor(self.entry_indices, self.entry_values, self.shape)
            similarity = tf.transpose(tf.sparse.sparse_dense_matmul(bank, query, adjoint_b=True))
            repeats = self.repeats(contexts)  # (B,)
            deepest = self.k * (tf.reduce_max(tf.concat([repeats, [0]], 0)) + 1)
            depth = tf.minimum(deepest, tf.cast(self.shape[0], tf.int32))  # the bank has ≥ k
            best, index = tf.math.top_k(similarity, depth)  # (B, depth)
            ranks = repeats[:, None] * self.k + tf.range(self.k)[None, :]  # (B, k)
            in_bank = ranks < depth
            ranks = tf.minimum(ranks, depth - 1)
            best = tf.where(in_bank, tf.gather(best, ranks, batch_dims=1), 0.0)
            replies = tf.gather(self.replies, tf.gather(index, ranks, batch_dims=1))
            return best, tf.where(in_bank, replies, "")

    return GraphRetrieval

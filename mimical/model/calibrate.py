"""Fit a persona's decoding to the person: turns as long, and in as many lines, as theirs.

A network fine-tuned for minutes gets the person's words before it gets their rhythm:
sampled turns come out shorter (or longer) and in fewer lines than the person's, which
a two-sample classifier sees at once. Two logit biases fix most of it: one on the end of
the turn, one on the line break; a third bias, on the score of retrieved replies, keeps
the short stored replies from winning more often than the person answers that briefly.
They are fitted on the validation conversations (never the test ones) by a coordinate
search that minimises the Kolmogorov–Smirnov distance of reply lengths plus that of line
counts, and set as variables of the `ReplyGenerator`, so they travel in the SavedModel.
One search is at most 9 batched reply calls of `CONTEXTS` contexts: seconds on two cores.

    calibrate(generator, validation_pairs) → {"end_bias": …, "retrieval_bias": …, …}
"""

from __future__ import annotations

import functools
import random
import time

from mimical.corpus.schema import Pair
from mimical.model.model import DEFAULT_TEMPERATURE
from mimical.model.sense import ks_distance

CONTEXTS = 64
REPLY_CHARS = 200
END_BIASES = (-1.0, -0.5, 0.0, 0.5, 1.0)
# Nats per token off a retrieved reply's score: the person's stored replies that may be
# reused are mostly short ones, which a length-normalised score favours.
RETRIEVAL_BIASES = (-2.0, -1.0, 0.0)
NEWLINE_BIASES = (-1.0, 0.0, 1.0)


def calibrate(generator, validation: list[Pair], seed: int = 0) -> dict:
    """Set `generator`'s end and newline biases to fit `validation`'s replies; returns the
    biases and the distances before and after."""
    import tensorflow as tf

    pairs = random.Random(seed).sample(validation, min(CONTEXTS, len(validation)))
    contexts = tf.constant([p.context for p in pairs])
    real = [p.reply[:REPLY_CHARS] for p in pairs]
    real_lengths, real_lines = [len(r) for r in real], [r.count("\n") for r in real]
    started = time.monotonic()

    @functools.cache
    def distance(end: float, retrieval: float, newline: float) -> tuple[float, float]:
        generator.end_bias.assign(end)
        generator.retrieval_bias.assign(retrieval)
        generator.newline_bias.assign(newline)
        replies = generator.reply(
            contexts,
            tf.fill([len(pairs)], DEFAULT_TEMPERATURE),
            tf.fill([len(pairs)], REPLY_CHARS),
            tf.range(seed, seed + len(pairs), dtype=tf.int64),
        )["reply"].numpy()
        texts = [r.decode("utf-8", errors="replace") for r in replies]
        return (
            ks_distance([len(t) for t in texts], real_lengths),
            ks_distance([t.count("\n") for t in texts], real_lines),
        )

    # One coordinate at a time; each search includes the current value, so the distance
    # never grows.
    before = distance(0.0, 0.0, 0.0)
    end = min(END_BIASES, key=lambda bias: sum(distance(bias, 0.0, 0.0)))
    retrieval = 0.0
    if generator.retrieval is not None:
        retrieval = min(RETRIEVAL_BIASES, key=lambda bias: sum(distance(end, bias, 0.0)))
    newline = min(NEWLINE_BIASES, key=lambda bias: sum(distance(end, retrieval, bias)))
    after = distance(end, retrieval, newline)
    generator.end_bias.assign(end)
    generator.retrieval_bias.assign(retrieval)
    generator.newline_bias.assign(newline)
    return {
        "end_bias": end,
        "retrieval_bias": retrieval,
        "newline_bias": newline,
        "length_ks_before": round(before[0], 4),
        "lines_ks_before": round(before[1], 4),
        "length_ks_after": round(after[0], 4),
        "lines_ks_after": round(after[1], 4),
        "contexts": len(pairs),
        "seconds": round(time.monotonic() - started, 1),
    }

"""Evaluate an exported persona model on the conversations it never saw.

    mimical evaluate MODEL_DIR corpus.jsonl [--json] [--report report.html]
    python -m mimical.model.evaluate MODEL_DIR corpus.jsonl

The held-out conversations are the ones recorded in the export's `split.json`, so the
corpus must be the one the model was trained on. Reported:

- bits per character of the real persona replies (characters + end-of-turn) under
  the model, next to a character 5-gram Kneser–Ney model fit on the training replies;
- verbatim rate: the share of sampled replies containing a ≥ 6-word span of some
  training message (a public persona must not recite private messages);
- style statistics of sampled vs real replies, and distinct-1/2 of each;
- whether the sampled replies make sense (`mimical.model.sense`): a two-sample test
  against the real replies, non-word rate, context relevance and distinct-2, each next to
  the person's own figure.
"""

from __future__ import annotations

import collections
import math
import statistics
import sys
from pathlib import Path

from mimical.corpus.schema import Pair, read_corpus, training_pairs
from mimical.errors import InputError
from mimical.model.export import EXTRA_DIR, load_export, read_extra, resolve_export
from mimical.model.ngram import CharNgramModel, bits_per_char
from mimical.model.sense import (
    TOKEN,
    Reference,
    chitchat_reference,
    distinct_n,
    is_emoji,
    sense_measures,
)

VERBATIM_WORDS = 6
# Replies longer than this are cut for scoring, by both models alike.
SCORE_CHARS = 400
SAMPLE_TEMPERATURE = 0.8
SAMPLE_MAX_CHARS = 200
# Exchanges shown side by side in the report (friend → real → model).
SHOWN_EXCHANGES = 10
UNKNOWN = "\x01"


def held_out_split(export_dir: Path, corpus_path: Path) -> tuple[list[Pair], list[Pair]]:
    """(train, held_out) pairs of `corpus_path`, split as recorded at training time."""
    held_out_keys = {tuple(key) for key in read_extra(export_dir, "split.json")["held_out"]}
    train, held_out = [], []
    for pair in training_pairs(read_corpus(corpus_path)):
        if pair.reply.strip():
            key = (pair.thread, pair.conversation)
            (held_out if key in held_out_keys else train).append(pair)
    if not held_out:
        raise InputError(
            f"{corpus_path}: has none of the model's held-out conversations; "
            "evaluate with the corpus the model was trained on"
        )
    return train, held_out


def model_bits_per_char(model, pairs: list[Pair], batch_size: int = 128) -> float:
    """Bits/char of the real replies given their contexts (each turn's end counts as a
    character), in length-sorted batches; `model` is an export or a ReplyGenerator."""
    import tensorflow as tf

    ordered = sorted(pairs, key=lambda p: len(p.reply))
    nats, characters = 0.0, 0
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        scored = model.score(
            tf.constant([p.context for p in batch]),
            tf.constant([p.reply[:SCORE_CHARS] for p in batch]),
        )
        nats += float(tf.reduce_sum(scored["nats"]))
        characters += int(tf.reduce_sum(scored["characters"]))
    return nats / characters / math.log(2)


def sample_replies(model, contexts: list[str], seed: int = 0) -> list[str]:
    import tensorflow as tf

    n = len(contexts)
    replies = model.reply(
        tf.constant(contexts),
        tf.fill([n], SAMPLE_TEMPERATURE),
        tf.fill([n], SAMPLE_MAX_CHARS),
        tf.range(seed, seed + n, dtype=tf.int64),
    )["reply"]
    return [r.decode("utf-8", errors="replace") for r in replies.numpy()]


def word_ngrams(text: str, n: int = VERBATIM_WORDS) -> set[tuple[str, ...]]:
    words = TOKEN.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def style(replies: list[str]) -> dict:
    """How replies look: length, emoji, capitals, punctuation, top words, distinct-n."""
    n = max(len(replies), 1)
    words = [w for r in replies for w in TOKEN.findall(r.lower())]
    lengths = [len(r) for r in replies] or [0]
    return {
        "replies": len(replies),
        "length_mean": round(statistics.fmean(lengths), 1),
        "length_median": statistics.median(lengths),
        "length_p90": sorted(lengths)[int(0.9 * (len(lengths) - 1))],
        "emoji_rate": round(sum(any(map(is_emoji, r)) for r in replies) / n, 3),
        "capitalised_rate": round(sum(r[:1].isupper() for r in replies) / n, 3),
        "ends_with_punctuation_rate": round(
            sum(r.rstrip()[-1:] in (".", "!", "?") for r in replies) / n, 3
        ),
        "question_rate": round(sum("?" in r for r in replies) / n, 3),
        "top_words": [w for w, _ in collections.Counter(words).most_common(10)],
        "distinct_1": round(distinct_n(replies, 1), 3),
        "distinct_2": round(distinct_n(replies, 2), 3),
    }


def evaluate_model(
    export_dir: Path,
    corpus_path: Path,
    samples: int = 200,
    seed: int = 0,
    reference: Reference | None = None,
) -> dict:
    """All evaluation numbers (a JSON-ready dict) plus sample exchanges for the report.

    `reference` is what the sense measures compare with: by default other people's chats
    (`mimical.model.sense.chitchat_reference`).
    """
    export_dir = resolve_export(export_dir)
    model = load_export(export_dir)
    train, held_out = held_out_split(export_dir, corpus_path)
    if (export_dir / EXTRA_DIR / "vocabulary.json").is_file():
        # A character model: both models see its unknown characters alike.
        codepoints = set(read_extra(export_dir, "vocabulary.json")["codepoints"])

        def in_vocabulary(text: str) -> str:
            return "".join(c if ord(c) in codepoints else UNKNOWN for c in text)
    else:  # subword pieces with byte fallback: every character is known

        def in_vocabulary(text: str) -> str:
            return text

    baseline = CharNgramModel(order=5).fit(in_vocabulary(p.reply) for p in train)
    baseline_bpc = bits_per_char(baseline, (in_vocabulary(p.reply[:SCORE_CHARS]) for p in held_out))
    bpc = model_bits_per_char(model, held_out)

    sampled_pairs = held_out[:: max(1, len(held_out) // samples)][:samples]
    generated = sample_replies(model, [p.context for p in sampled_pairs], seed)
    training_spans = set()
    for pair in train:
        for message in (*pair.context.split("\n"), *pair.reply.split("\n")):
            training_spans |= word_ngrams(message)
    verbatim = [r for r in generated if word_ngrams(r) & training_spans]
    real = [p.reply for p in sampled_pairs]
    sense = sense_measures(
        [p.context for p in sampled_pairs], real, generated, reference or chitchat_reference(), seed
    )
    return {
        "model": str(export_dir),
        "held_out_replies": len(held_out),
        "bits_per_char": round(bpc, 4),
        "baseline_5gram_bits_per_char": round(baseline_bpc, 4),
        "improvement_over_baseline": round(1 - bpc / baseline_bpc, 4),
        "verbatim_rate": round(len(verbatim) / max(len(generated), 1), 4),
        "style": {
            "model": style(generated),
            "persona": style(real),
        },
        "sense": sense,
        "training": read_extra(export_dir, "metrics.json"),
        "curve": read_extra(export_dir, "curve.json"),
        "samples": [
            {"context": p.context, "real": p.reply, "model": g}
            for p, g in zip(sampled_pairs[:SHOWN_EXCHANGES], generated, strict=False)
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(evaluate_model(Path(sys.argv[1]), Path(sys.argv[2])), indent=1))

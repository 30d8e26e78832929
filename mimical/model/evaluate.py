"""Evaluate an exported persona model on its test conversations, beside the baselines.

    mimical evaluate MODEL_DIR corpus.jsonl [--json] [--report report.html]
    python -m mimical.model.evaluate MODEL_DIR corpus.jsonl

The test conversations are the ones recorded in the export's `split.json` (so the corpus
must be the one the model was trained on); training chose its checkpoint and calibrated
its decoding on separate validation conversations, so this is the only place the test
conversations are read. Up to `TEST_EXCHANGES` of them (the same ones for every seed
and every system), each system's replies and the real ones cut to the same
`REPLY_CHARS`, and for every seed of `SEEDS`:

- the model's sampled replies, and the baselines of `mimical.model.baselines`
  (retrieval by nearest friend turn, a random reply of the person, an echo of the
  friend, and the person against themselves);
- for each: the sense measures of `mimical.model.sense` (two-sample accuracy, relevance
  to the friend's last turn with copied words earning nothing, non-word rate,
  distinct-2), the 6-word verbatim rate and the exact-copy rate against the training
  messages, and the Kolmogorov–Smirnov distance of reply lengths and line counts from
  the real replies';
- every figure as its mean over the seeds with a 95% t-interval.

Also bits per character of the real test replies under the model next to a character
5-gram Kneser–Ney model fit on the training replies.
"""

from __future__ import annotations

import collections
import math
import re
import statistics
import sys
from pathlib import Path

from mimical.corpus.schema import (
    Pair,
    context_messages,
    read_corpus,
    readable_context,
    training_pairs,
)
from mimical.errors import InputError
from mimical.model import baselines
from mimical.model.export import (
    CURVE_FILE,
    EXTRA_DIR,
    METRICS_FILE,
    SPLIT_FILE,
    VOCABULARY_FILE,
    load_export,
    read_extra,
    resolve_export,
)
from mimical.model.model import DEFAULT_TEMPERATURE, VERBATIM_WORDS
from mimical.model.ngram import CharNgramModel, bits_per_char
from mimical.model.sense import (
    TOKEN,
    Reference,
    chitchat_reference,
    context_relevance,
    distinct_n,
    ks_distance,
    non_word_rate,
    two_sample_accuracy,
    word_ngrams,
)
from mimical.model.tokenizer import has_emoji

TEST_EXCHANGES = 200
SEEDS = (0, 1, 2)
# Real and generated replies alike are cut to this many characters before any measure.
REPLY_CHARS = 200
# Replies longer than this are cut for scoring, by both models alike.
SCORE_CHARS = 400
# Exchanges shown side by side in the report (friend → real → model → baselines).
SHOWN_EXCHANGES = 10
SYSTEMS = ("model", "retrieval", "random", "echo", "person")
UNKNOWN = "\x01"
PLACEHOLDER_SHAPE = re.compile(r"<[A-Z]")


def test_split(
    export_dir: Path, corpus_path: Path, part: str = "test"
) -> tuple[list[Pair], list[Pair]]:
    """(train, test) pairs of `corpus_path`, split as recorded at training time; the other
    held-out part belongs to neither. `part="validation"` gives the validation
    conversations instead of the test ones: for choosing decoding settings, which the
    test conversations must not see."""
    split = read_extra(export_dir, SPLIT_FILE)
    if "test" not in split:  # exported before validation was carved out: one held-out part
        split = {"test": split.get("held_out", [])}
    parts = {name: {tuple(key) for key in split.get(name, [])} for name in ("test", "validation")}
    train, test = [], []
    for pair in training_pairs(read_corpus(corpus_path)):
        key = (pair.thread, pair.conversation)
        if pair.reply.strip() and not any(key in keys for keys in parts.values()):
            train.append(pair)
        elif pair.reply.strip() and key in parts[part]:
            test.append(pair)
    if not test:
        raise InputError(
            f"{corpus_path}: has none of the model's {part} conversations; "
            "evaluate with the corpus the model was trained on"
        )
    return train, test


def reply_nats(model, contexts: list[str], replies: list[str], batch_size: int = 128):
    """(nats, characters) of each reply after its context, as two lists in the given
    order: the replies cut to `SCORE_CHARS`, scored in length-sorted batches (each turn's
    end counts as a character); `model` is an export or a ReplyGenerator."""
    import tensorflow as tf

    order = sorted(range(len(replies)), key=lambda i: len(replies[i]))
    nats, characters = [0.0] * len(replies), [0] * len(replies)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        scored = model.score(
            tf.constant([contexts[i] for i in batch]),
            tf.constant([replies[i][:SCORE_CHARS] for i in batch]),
        )
        for i, n, c in zip(
            batch, scored["nats"].numpy(), scored["characters"].numpy(), strict=True
        ):
            nats[i], characters[i] = float(n), int(c)
    return nats, characters


def model_bits_per_char(model, pairs: list[Pair], batch_size: int = 128) -> float:
    """Bits/char of the real replies given their contexts (see `reply_nats`)."""
    nats, characters = reply_nats(
        model, [p.context for p in pairs], [p.reply for p in pairs], batch_size
    )
    return sum(nats) / max(sum(characters), 1) / math.log(2)


def context_use(model, pairs: list[Pair], seed: int = 0) -> dict:
    """How much the model reads the conversation: the bits per reply that its true
    context saves over another reply's (the contexts shuffled among the pairs, none
    left in place), with a 95% interval over the replies; and bits/char under each.

    A model that ignores the context saves 0; base v3 saved ~3.8 of ~136 bits. Openers
    (no context) are left out: they have nothing to read.
    """
    import random

    pairs = [p for p in pairs if p.context]
    if len(pairs) < 2:
        return {"bits_per_reply": None, "low": None, "high": None, "replies": len(pairs)}
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    other = {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}
    replies = [p.reply for p in pairs]
    true, characters = reply_nats(model, [p.context for p in pairs], replies)
    shuffled, _ = reply_nats(model, [pairs[other[i]].context for i in range(len(pairs))], replies)
    saved = [(s - t) / math.log(2) for s, t in zip(shuffled, true, strict=True)]
    spread = 1.96 * statistics.stdev(saved) / math.sqrt(len(saved))
    average = statistics.fmean(saved)
    chars = max(sum(characters), 1) * math.log(2)
    return {
        "bits_per_reply": round(average, 3),
        "low": round(average - spread, 3),
        "high": round(average + spread, 3),
        "replies": len(saved),
        "bits_per_char": round(sum(true) / chars, 4),
        "shuffled_bits_per_char": round(sum(shuffled) / chars, 4),
    }


def sample_replies(model, contexts: list[str], seed: int = 0) -> tuple[list[str], list[bool]]:
    """The model's replies as a user gets them (default temperature), one seed per row,
    and whether each is a retrieved reply of the person's."""
    import tensorflow as tf

    n = len(contexts)
    outputs = model.reply(
        tf.constant(contexts),
        tf.fill([n], DEFAULT_TEMPERATURE),
        tf.fill([n], REPLY_CHARS),
        tf.range(seed * 1_000_003, seed * 1_000_003 + n, dtype=tf.int64),
    )
    replies = [r.decode("utf-8", errors="replace") for r in outputs["reply"].numpy()]
    return replies, [bool(flag) for flag in outputs["retrieved"].numpy()]


def normalized(text: str) -> str:
    """A reply as exact-copy detection compares it: lowercase words, nothing else."""
    return " ".join(TOKEN.findall(text.lower()))


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
        "lines_mean": round(statistics.fmean([r.count("\n") + 1 for r in replies] or [0]), 2),
        "emoji_rate": round(sum(map(has_emoji, replies)) / n, 3),
        "capitalised_rate": round(sum(r[:1].isupper() for r in replies) / n, 3),
        "ends_with_punctuation_rate": round(
            sum(r.rstrip()[-1:] in (".", "!", "?") for r in replies) / n, 3
        ),
        "question_rate": round(sum("?" in r for r in replies) / n, 3),
        "top_words": [w for w, _ in collections.Counter(words).most_common(10)],
        "distinct_1": round(distinct_n(replies, 1), 3),
        "distinct_2": round(distinct_n(replies, 2), 3),
    }


class TrainingText:
    """What the model was trained on, for the copy measures: every message's 6-word
    spans, and the person's replies (normalized) for exact copies."""

    def __init__(self, train: list[Pair]):
        self.spans = set()
        for pair in train:
            for message in (*context_messages(pair.context), *pair.reply.split("\n")):
                self.spans |= word_ngrams(message)
        self.replies = {normalized(p.reply) for p in train}

    def verbatim_rate(self, replies: list[str]) -> float:
        return sum(bool(word_ngrams(r) & self.spans) for r in replies) / max(len(replies), 1)

    def exact_copies(self, replies: list[str], min_words: int = 1) -> float:
        """Share of replies identical to a training reply and at least `min_words` long."""
        copies = [
            r
            for r in replies
            if normalized(r) in self.replies and len(TOKEN.findall(r)) >= min_words
        ]
        return len(copies) / max(len(replies), 1)


def system_figures(
    exchanges: list[Pair],
    real: list[str],
    replies: list[str],
    *,
    reference: Reference,
    training: TrainingText,
    two_sample: float | None,
) -> dict:
    """One system's figures for one seed (`two_sample` computed by the caller: the person
    is tested half against half, everyone else against the real replies)."""
    relevance = context_relevance(
        [p.last_turn for p in exchanges],
        real,
        replies,
        reference,
        [p.context for p in exchanges],
    )
    lengths, real_lengths = [len(r) for r in replies], [len(r) for r in real]
    lines, real_lines = [r.count("\n") + 1 for r in replies], [r.count("\n") + 1 for r in real]
    return {
        "two_sample_accuracy": two_sample,
        "relevance": relevance["relevance"],
        "relevance_gain": relevance["model_gain"],
        "non_word_rate": non_word_rate(replies, reference),
        "distinct_2": distinct_n(replies, 2),
        "length_mean": statistics.fmean(lengths),
        "lines_mean": statistics.fmean(lines),
        "length_ks": ks_distance(lengths, real_lengths),
        "lines_ks": ks_distance(lines, real_lines),
        "verbatim_rate": training.verbatim_rate(replies),
        "exact_copy_rate": training.exact_copies(replies),
        "exact_copy_6_words_rate": training.exact_copies(replies, VERBATIM_WORDS),
        # "<" then a capital: a scrubber's placeholder, real or (from a model) invented.
        "placeholder_rate": sum(bool(PLACEHOLDER_SHAPE.search(r)) for r in replies)
        / max(len(replies), 1),
    }


# Figures that are shares or distances in [0, 1]: their intervals are clipped to it.
UNIT_FIGURES = {
    "two_sample_accuracy",
    "non_word_rate",
    "distinct_2",
    "length_ks",
    "lines_ks",
    "verbatim_rate",
    "exact_copy_rate",
    "exact_copy_6_words_rate",
    "placeholder_rate",
    "retrieved_share",
}


def interval(values: list[float | None], unit: bool = False) -> dict:
    """Mean and 95% t-interval over the seeds' values (None where a figure is undefined);
    `unit`: the figure lies in [0, 1], and so does its interval."""
    from scipy.stats import t

    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "low": None, "high": None, "seeds": 0}
    mean = statistics.fmean(values)
    half = 0.0
    if len(values) > 1:
        half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    low, high = mean - half, mean + half
    if unit:
        low, high = max(low, 0.0), min(high, 1.0)
    return {
        "mean": round(mean, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "seeds": len(values),
    }


def pick_exchanges(test: list[Pair], count: int) -> list[Pair]:
    """`count` test exchanges spread evenly over the test conversations (all if fewer)."""
    return test[:: max(1, len(test) // count)][:count]


def evaluate_model(
    export_dir: Path,
    corpus_path: Path,
    samples: int = TEST_EXCHANGES,
    seeds: tuple[int, ...] = SEEDS,
    reference: Reference | None = None,
    model=None,
    baselines_too: bool = True,
    part: str = "test",
) -> dict:
    """All evaluation numbers (a JSON-ready dict) plus sample exchanges for the report.

    `reference` is what the sense measures compare with: by default other people's chats
    (`mimical.model.sense.chitchat_reference`). `model` replaces the export's graph (a
    `ReplyGenerator` with other decoding settings, for benchmarks); without
    `baselines_too` only the model is measured. `part="validation"` measures on the
    validation conversations (see `test_split`).
    """
    export_dir = resolve_export(export_dir)
    model = model or load_export(export_dir)
    reference = reference or chitchat_reference()
    train, test = test_split(export_dir, corpus_path, part)
    if (export_dir / EXTRA_DIR / VOCABULARY_FILE).is_file():
        # A character model: both models see its unknown characters alike.
        codepoints = set(read_extra(export_dir, VOCABULARY_FILE)["codepoints"])

        def in_vocabulary(text: str) -> str:
            return "".join(c if ord(c) in codepoints else UNKNOWN for c in text)
    else:  # subword pieces with byte fallback: every character is known

        def in_vocabulary(text: str) -> str:
            return text

    baseline = CharNgramModel(order=5).fit(in_vocabulary(p.reply) for p in train)
    baseline_bpc = bits_per_char(baseline, (in_vocabulary(p.reply[:SCORE_CHARS]) for p in test))
    bpc = model_bits_per_char(model, test)

    exchanges = pick_exchanges(test, samples)
    real = [p.reply[:REPLY_CHARS] for p in exchanges]
    turns = [p.last_turn for p in exchanges]
    training = TrainingText(train)
    retrieved = [r[:REPLY_CHARS] for r in baselines.retrieval_replies(train, turns)]
    systems = SYSTEMS if baselines_too else ("model",)
    per_seed = {system: [] for system in systems}
    retrieved_share = []
    shown = {}
    for seed in seeds:
        generated, retrieved_flags = sample_replies(model, [p.context for p in exchanges], seed)
        retrieved_share.append(sum(retrieved_flags) / max(len(retrieved_flags), 1))
        replies = {"model": generated}
        if baselines_too:
            replies |= {
                "retrieval": retrieved,
                "random": [
                    r[:REPLY_CHARS] for r in baselines.random_replies(train, len(exchanges), seed)
                ],
                "echo": [turn[:REPLY_CHARS] for turn in baselines.echo_replies(turns)],
                "person": real,
            }
        shown = shown or replies
        for system, system_replies in replies.items():
            if system == "person":
                two_sample = two_sample_accuracy(*baselines.person_halves(real, seed), seed)
            else:
                two_sample = two_sample_accuracy(real, system_replies, seed)
            per_seed[system].append(
                system_figures(
                    exchanges,
                    real,
                    system_replies,
                    reference=reference,
                    training=training,
                    two_sample=two_sample,
                )
            )
    figures = {
        system: {
            name: interval([run[name] for run in runs], name in UNIT_FIGURES) for name in runs[0]
        }
        for system, runs in per_seed.items()
    }
    figures["model"]["retrieved_share"] = interval(retrieved_share, unit=True)
    return {
        "model": str(export_dir),
        "test_replies": len(test),
        "exchanges": len(exchanges),
        "seeds": list(seeds),
        "reply_chars": REPLY_CHARS,
        "bits_per_char": round(bpc, 4),
        "baseline_5gram_bits_per_char": round(baseline_bpc, 4),
        "improvement_over_baseline": round(1 - bpc / baseline_bpc, 4),
        "context_use": context_use(model, test),
        "systems": figures,
        "style": {"model": style(shown["model"]), "persona": style(real)},
        "training": read_extra(export_dir, METRICS_FILE),
        "curve": read_extra(export_dir, CURVE_FILE),
        "samples": [
            {
                "context": readable_context(p.context),
                "real": r,
                **{s: shown[s][i] for s in shown if s != "person"},
            }
            for i, (p, r) in enumerate(zip(exchanges[:SHOWN_EXCHANGES], real, strict=False))
        ],
    }


def mean(result: dict, system: str, figure: str) -> float | None:
    """A figure's mean over the seeds, from `evaluate_model`'s result."""
    return result["systems"][system][figure]["mean"]


if __name__ == "__main__":
    import json

    print(json.dumps(evaluate_model(Path(sys.argv[1]), Path(sys.argv[2])), indent=1))

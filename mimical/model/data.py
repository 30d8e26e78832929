"""Training data: corpus → (context → reply) pairs → train/validation/test → padded batches.

The split is by conversation, never by message: replies in one conversation echo each
other, so a message-level split would leak and flatter the test numbers.

    python -m mimical.model.data corpus.jsonl   # print the split sizes
"""

from __future__ import annotations

import collections
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimical.corpus.schema import Pair, read_corpus, training_pairs
from mimical.errors import InputError
from mimical.model.model import SEP, ModelConfig, Vocabulary, example_tokens

# Below this there is too little of the persona's voice to learn anything from.
MIN_REPLIES = 50
MIN_CONVERSATIONS = 5
# The test conversations: enough for `mimical evaluate`'s 200 exchanges where the person
# has them, never more than a fifth of the replies (a small person needs them to learn).
TEST_REPLIES = 200
MAX_TEST_FRACTION = 0.2
# The validation conversations, carved from the training side: early stopping and the
# decoding calibration read them, so the test conversations are touched once, by
# `mimical evaluate`.
VALIDATION_FRACTION = 0.1
MAX_VALIDATION_REPLIES = 300


@dataclass(frozen=True)
class Split:
    train: list[Pair]
    validation: list[Pair]  # choosing the checkpoint and calibrating the decoder
    test: list[Pair]  # only for `mimical evaluate`


def load_split(corpus_path: Path, seed: int = 0) -> Split:
    """Read the corpus and split it by conversation (chosen by `seed`): test first, then
    validation from the rest; see TEST_REPLIES and VALIDATION_FRACTION."""
    pairs = [p for p in training_pairs(read_corpus(corpus_path)) if p.reply.strip()]
    if not pairs:
        raise InputError(f"{corpus_path}: the corpus has no persona replies to learn from")
    conversations = sorted({(p.thread, p.conversation) for p in pairs})
    if len(pairs) < MIN_REPLIES or len(conversations) < MIN_CONVERSATIONS:
        raise InputError(
            f"{corpus_path}: too small to train: {len(pairs)} persona replies in "
            f"{len(conversations)} conversations; need at least {MIN_REPLIES} replies "
            f"in {MIN_CONVERSATIONS} conversations"
        )
    test_target = min(TEST_REPLIES, MAX_TEST_FRACTION * len(pairs))
    test = _pick_conversations(pairs, conversations, test_target, seed)
    rest = [key for key in conversations if key not in test]
    rest_pairs = [p for p in pairs if (p.thread, p.conversation) not in test]
    validation_target = min(VALIDATION_FRACTION * len(rest_pairs), MAX_VALIDATION_REPLIES)
    validation = _pick_conversations(rest_pairs, rest, validation_target, seed + 1)
    return Split(
        train=[p for p in rest_pairs if (p.thread, p.conversation) not in validation],
        validation=[p for p in rest_pairs if (p.thread, p.conversation) in validation],
        test=[p for p in pairs if (p.thread, p.conversation) in test],
    )


def _pick_conversations(pairs: list[Pair], conversations: list, target: float, seed: int) -> set:
    """Whole conversations, in an order chosen by `seed`, until they hold `target` replies
    (at most 1.5 × `target`, and never the last conversation): conversation sizes vary a
    lot (one person's 10 conversations held 2 to 300 replies), so a share of the
    conversations could hold out almost nothing."""
    sizes = collections.Counter((p.thread, p.conversation) for p in pairs)
    order = list(conversations)
    random.Random(seed).shuffle(order)
    picked, count = set(), 0
    for key in order:
        if count >= target:
            break
        if count + sizes[key] <= max(1.5 * target, 1) and len(picked) + 1 < len(conversations):
            picked.add(key)
            count += sizes[key]
    return picked or {min(order, key=lambda key: sizes[key])}


def build_vocabulary(pairs: list[Pair], config: ModelConfig) -> Vocabulary:
    return Vocabulary.from_texts(
        (text for p in pairs for text in (p.context, p.reply)), min_count=config.min_char_count
    )


def encode(pairs: list[Pair], vocab: Vocabulary, config: ModelConfig) -> list[np.ndarray]:
    return [np.asarray(example_tokens(vocab, config, p.context, p.reply), np.int32) for p in pairs]


def batches(
    examples: list[np.ndarray],
    batch_size: int,
    rng: np.random.Generator | None = None,
    context_weight: float = 0.0,
    silent: tuple[int, ...] = (),
    mismatched_rows: int = 0,
) -> Iterator[tuple[np.ndarray, ...]]:
    """(inputs, targets, weights) batches of similar-length examples, padded with 0.

    With `rng`, examples are shuffled and then sorted by length within windows of 50
    batches, which keeps padding low without always pairing the same examples; the
    batch order is shuffled too. `weights` is 1 where the target is part of the reply
    and `context_weight` where it is part of the context (the friend's text); 0 where it
    is one of the `silent` tokens (the scrubber's placeholders: read, never learnt).

    With `mismatched_rows`, each batch also brings that many of its replies after the
    next row's context, (inputs, targets) padded alike: what the contrastive loss
    (`ModelConfig.contrast_weight`) tells apart from the replies after their own.
    """
    order = np.arange(len(examples))
    if rng is not None:
        rng.shuffle(order)
    window = batch_size * 50
    chunks = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lambda i: len(examples[i]))
        chunks += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    if rng is not None:
        rng.shuffle(chunks)
    for chunk in chunks:
        length = max(len(examples[i]) for i in chunk) - 1
        inputs = np.zeros((len(chunk), length), np.int32)  # (B, T)
        targets = np.zeros((len(chunk), length), np.int32)
        weights = np.zeros((len(chunk), length), np.float32)
        for row, i in enumerate(chunk):
            tokens = examples[i]
            n = len(tokens) - 1
            inputs[row, :n] = tokens[:-1]
            targets[row, :n] = tokens[1:]
            sep = int(np.argmax(tokens == SEP))
            weights[row, :sep] = context_weight
            weights[row, sep:n] = 1.0  # predictions made at or after SEP
        weights[np.isin(targets, silent)] = 0.0
        if not mismatched_rows:
            yield inputs, targets, weights
            continue
        swapped = [
            _with_context(examples[chunk[(row + 1) % len(chunk)]], examples[i])
            for row, i in enumerate(chunk[:mismatched_rows])
        ]
        length = max(len(tokens) for tokens in swapped) - 1
        other_inputs = np.zeros((len(swapped), length), np.int32)
        other_targets = np.zeros((len(swapped), length), np.int32)
        for row, tokens in enumerate(swapped):
            other_inputs[row, : len(tokens) - 1] = tokens[:-1]
            other_targets[row, : len(tokens) - 1] = tokens[1:]
        yield inputs, targets, weights, other_inputs, other_targets


def _with_context(context_from: np.ndarray, reply_from: np.ndarray) -> np.ndarray:
    """`reply_from`'s SEP, reply and end after `context_from`'s context."""
    context = context_from[: int(np.argmax(context_from == SEP))]
    return np.concatenate([context, reply_from[int(np.argmax(reply_from == SEP)) :]])


if __name__ == "__main__":
    split = load_split(Path(sys.argv[1]))
    print(
        f"train: {len(split.train)} replies, validation: {len(split.validation)}, "
        f"test: {len(split.test)}"
    )

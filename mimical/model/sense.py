"""Do sampled replies make sense? Measures over lists of strings, independent of the model.

    from mimical.model.sense import chitchat_reference, sense_measures
    sense_measures(contexts, real_replies, model_replies, chitchat_reference())

Style statistics say whether replies *look* like the person's; these say whether they
read like language that answers what was said:

- two-sample accuracy: a classifier (word and character n-grams plus style features),
  cross-validated, tells the person's real replies from the model's; 0.5 means it cannot;
- non-word rate: share of reply words that no one in a reference vocabulary ever wrote;
- context relevance: how much better a reply answers the friend's last turn than the
  other exchanges' turns, by word associations (positive PMI between a friend's turn
  and the reply) learned on other people's exchanges, where words copied from the
  context earn nothing (an echo of the friend scores below chance); 0 = as a random
  turn, 1 = as much as the person's real replies;
- distinct-n: the share of unique word n-grams (repetitive models score low).

The reference (vocabulary and associations) is learned from the chitchat data set minus
every conversation the base model leaves out (held-out people and the demo persona), so
the people we evaluate on never shape it. It takes ~30 s to build and is cached as a
few MB under the user's cache directory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import math
import os
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy import sparse

from mimical.atomic import atomic_file
from mimical.model.model import VERBATIM_WORDS
from mimical.model.tokenizer import is_emoji

# Tokens for distinct-n and verbatim spans: runs of letters, digits and apostrophes.
TOKEN = re.compile(r"[\w']+")
# Words for vocabulary and associations: letters with inner apostrophes ("don't"),
# lowercased; digits and emoji are not words.
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
# Words seen fewer times in the reference are typos or names, not vocabulary.
VOCABULARY_MIN_COUNT = 2
# Word pairs seen together fewer times carry no reliable association.
ASSOCIATION_MIN_COUNT = 3
# Smoothing of the reply-word distribution in PMI (Levy et al. 2015): tames rare words.
PMI_SMOOTHING = 0.75
CLASSIFIER_FOLDS = 5
REFERENCE_FORMAT = 1


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def word_ngrams(text: str, n: int = VERBATIM_WORDS) -> set[tuple[str, ...]]:
    """The text's runs of `n` words (`TOKEN`s, lowercased): by default the verbatim spans
    that the evaluation counts and that retrieval keeps out of a public persona's bank."""
    tokens = TOKEN.findall(text.lower())
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def distinct_n(replies: Iterable[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over the replies (0 when there are none)."""
    tokenized = [TOKEN.findall(reply.lower()) for reply in replies]
    grams = [tuple(ws[i : i + n]) for ws in tokenized for i in range(len(ws) - n + 1)]
    return len(set(grams)) / max(len(grams), 1)


def ks_distance(sample: list[float], reference: list[float]) -> float:
    """Kolmogorov–Smirnov distance of two samples (e.g. reply lengths): the largest gap
    between their empirical distribution functions; 0 = the same, 1 = no overlap. (The
    statistic alone: scipy's `ks_2samp` also computes a p-value, which warns on tiny
    samples.)"""
    if not len(sample) or not len(reference):
        return 0.0
    sample, reference = np.sort(sample), np.sort(reference)
    points = np.concatenate([sample, reference])
    below_sample = np.searchsorted(sample, points, side="right") / len(sample)
    below_reference = np.searchsorted(reference, points, side="right") / len(reference)
    return float(np.abs(below_sample - below_reference).max())


# ---------------------------------------------------------------- two-sample test


def style_features(replies: Iterable[str]) -> np.ndarray:
    """Per reply: length, lines, words, word length, case, emoji, digits, punctuation."""
    rows = []
    for reply in replies:
        chars = max(len(reply), 1)
        tokens = reply.split()
        rows.append(
            [
                math.log1p(len(reply)),
                reply.count("\n"),
                len(tokens),
                sum(map(len, tokens)) / max(len(tokens), 1),
                sum(c.isupper() for c in reply) / chars,
                reply[:1].isupper(),
                sum(map(is_emoji, reply)),
                sum(c.isdigit() for c in reply) / chars,
                sum(unicodedata.category(c).startswith("P") for c in reply) / chars,
                reply.rstrip()[-1:] in (".", "!", "?"),
                "?" in reply,
            ]
        )
    return np.array(rows, dtype=np.float64).reshape(-1, 11)


def two_sample_accuracy(real: list[str], generated: list[str], seed: int = 0) -> float | None:
    """Cross-validated accuracy of a classifier telling `real` from `generated` replies.

    Logistic regression over tf-idf word 1–2-grams, character 1–4-grams (case and
    punctuation kept) and standardised style features; stratified k-fold. 0.5 means
    the two sets cannot be told apart, 1.0 that every reply gives itself away. None
    with fewer than 2 replies on a side.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    folds = min(CLASSIFIER_FOLDS, len(real), len(generated))
    if folds < 2:
        return None
    texts = [*real, *generated]
    if not any(texts):
        return 0.5
    labels = np.array([0] * len(real) + [1] * len(generated))
    features = FeatureUnion(
        [
            (
                "words",
                TfidfVectorizer(token_pattern=r"[\w']+", ngram_range=(1, 2), sublinear_tf=True),
            ),
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char", ngram_range=(1, 4), lowercase=False, sublinear_tf=True
                ),
            ),
            ("style", make_pipeline(FunctionTransformer(style_features), StandardScaler())),
        ]
    )
    classifier = make_pipeline(features, LogisticRegression(solver="liblinear"))
    # A text found on both sides stays in one fold: the classifier must tell replies it
    # has not seen, or two identical sets would look different (each copy votes against
    # its twin).
    splits = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    accuracy = cross_val_score(classifier, texts, labels, groups=texts, cv=splits)
    return float(accuracy.mean())


# ---------------------------------------------------------------- reference


@dataclass(frozen=True)
class Reference:
    """What other people write: a vocabulary, and word associations across turns.

    `associations[i, j]` is the positive PMI (bits) between word i in a friend's turn and
    word j in the reply to it; rows and columns follow `words`.
    """

    words: tuple[str, ...]
    associations: sparse.csr_array  # (vocabulary, vocabulary), float32

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    @classmethod
    def fit(cls, messages: Iterable[str], exchanges: Iterable[tuple[str, str]]) -> Reference:
        """Learn the vocabulary from `messages`, associations from (turn, reply) `exchanges`."""
        counts = Counter(w for message in messages for w in words(message))
        vocabulary = tuple(sorted(w for w, n in counts.items() if n >= VOCABULARY_MIN_COUNT))
        size = len(vocabulary)
        reference = cls(vocabulary, sparse.csr_array((size, size), dtype=np.float32))
        exchanges = list(exchanges)
        said = reference.presence([turn for turn, _ in exchanges])
        replied = reference.presence([reply for _, reply in exchanges])
        together = (said.T @ replied).tocoo()  # exchanges with word i before and j after
        keep = together.data >= ASSOCIATION_MIN_COUNT
        rows, columns, joint = together.row[keep], together.col[keep], together.data[keep]
        said_count = np.asarray(said.sum(axis=0)).ravel()
        replied_smoothed = np.asarray(replied.sum(axis=0)).ravel() ** PMI_SMOOTHING
        p_joint = joint / len(exchanges)
        p_said = said_count[rows] / len(exchanges)
        p_replied = replied_smoothed[columns] / replied_smoothed.sum()
        pmi = np.maximum(np.log2(p_joint / (p_said * p_replied)), 0).astype(np.float32)
        associations = sparse.csr_array((pmi, (rows, columns)), shape=(size, size))
        associations.eliminate_zeros()
        return cls(vocabulary, associations)

    def ids(self, text: str) -> set[int]:
        """The vocabulary words of `text`, as indices into `words`."""
        return {self.index[w] for w in words(text) if w in self.index}

    def presence(self, texts: list[str]) -> sparse.csr_array:
        """Binary (text, word) matrix: which vocabulary words each text has."""
        rows, columns = [], []
        for row, text in enumerate(texts):
            known = self.ids(text)
            rows.extend([row] * len(known))
            columns.extend(known)
        return sparse.csr_array(
            (np.ones(len(rows), dtype=np.float32), (rows, columns)),
            shape=(len(texts), len(self.words)),
        )

    def save(self, path: Path) -> None:
        """Write atomically (a concurrent reader sees the old file or the whole new one)."""
        matrix = self.associations
        with atomic_file(path, private=True) as file:
            np.savez_compressed(
                file,
                words=np.frombuffer("\n".join(self.words).encode(), dtype=np.uint8),
                data=matrix.data,
                indices=matrix.indices,
                indptr=matrix.indptr,
            )

    @classmethod
    def load(cls, path: Path) -> Reference:
        with np.load(path) as stored:
            vocabulary = tuple(stored["words"].tobytes().decode().split("\n"))
            size = len(vocabulary)
            matrix = (stored["data"], stored["indices"], stored["indptr"])
            return cls(vocabulary, sparse.csr_array(matrix, shape=(size, size)))


def non_word_rate(replies: Iterable[str], reference: Reference) -> float:
    """Share of the replies' words that are not in the reference vocabulary."""
    tokens = [w for reply in replies for w in words(reply)]
    return sum(w not in reference.index for w in tokens) / max(len(tokens), 1)


def association_scores(
    turns: list[str], replies: list[str], reference: Reference, contexts: list[str] | None = None
):
    """`scores[c, r]`: how well what reply r adds answers turn c.

    For each known word of the reply that its own context (`contexts[r]`, the turns
    before it; default `turns[r]`) does not already hold, its strongest association
    with any known word of turn c; averaged over those words. Words the reply copies
    earn nothing, against any turn: repeating what the friend said is not an answer,
    and an echo of the friend must not pass for a relevant reply. A reply that adds no
    known word, or a turn without any, scores 0 with everything: gibberish goes with
    nothing.
    """
    associations = reference.associations.tocsc()
    contexts = turns if contexts is None else contexts
    turn_words = [sorted(reference.ids(turn)) for turn in turns]
    # Turns as rows of word ids, padded with an id past the vocabulary (a zero row).
    padding = len(reference.words)
    padded = np.full((len(turns), max(map(len, turn_words), default=0) or 1), padding)
    for row, ids in enumerate(turn_words):
        padded[row, : len(ids)] = ids
    scores = np.zeros((len(turns), len(replies)), dtype=np.float32)
    for column, (reply, context) in enumerate(zip(replies, contexts, strict=True)):
        ids = sorted(reference.ids(reply) - reference.ids(context))
        if ids:
            with_reply_words = np.zeros((padding + 1, len(ids)), dtype=np.float32)
            with_reply_words[:padding] = associations[:, ids].toarray()
            scores[:, column] = with_reply_words[padded].max(axis=1).mean(axis=1)
    return scores


def relevance_gains(
    turns: list[str], replies: list[str], reference: Reference, contexts: list[str] | None = None
) -> np.ndarray:
    """Per reply, how much better it answers its own turn than the others: the share of
    other turns ranked below its own (ties count half), minus 0.5.

    Ranks rather than raw scores, so a few replies full of strongly associated words do
    not outweigh the rest; 0 is chance, 0.5 a perfect match. A reply whose every known
    word was copied from its context (an echo) says nothing: -0.5, the worst rank.
    """
    contexts = turns if contexts is None else contexts
    scores = association_scores(turns, replies, reference, contexts)
    own = np.diag(scores)
    below = (scores < own).sum(axis=0) + 0.5 * ((scores == own).sum(axis=0) - 1)
    gains = below / (len(replies) - 1) - 0.5
    echoes = [
        bool(reference.ids(reply)) and reference.ids(reply) <= reference.ids(context)
        for reply, context in zip(replies, contexts, strict=True)
    ]
    return np.where(echoes, -0.5, gains)


def context_relevance(
    turns: list[str],
    real: list[str],
    generated: list[str],
    reference: Reference,
    contexts: list[str] | None = None,
) -> dict:
    """Relevance of `generated` replies to the friend's last turn (`turns`), scaled so
    the person's `real` replies score 1; words copied from `contexts` earn nothing.

    `model_gain` and `persona_gain` are the mean `relevance_gains`; `relevance_stderr`
    is the standard error from the spread of the model's (the real replies' mean taken
    as exact). Exchanges without a turn before the reply (openers) are skipped.
    `relevance` is None when the real replies go no better with their turns than with
    others, and everything is None with fewer than 2 exchanges.
    """
    contexts = turns if contexts is None else contexts
    kept = [i for i, turn in enumerate(turns) if turn.strip()]
    result = {
        "relevance": None,
        "relevance_stderr": None,
        "model_gain": None,
        "persona_gain": None,
        "exchanges": len(kept),
    }
    if len(kept) < 2:
        return result
    turns = [turns[i] for i in kept]
    contexts = [contexts[i] for i in kept]
    model = relevance_gains(turns, [generated[i] for i in kept], reference, contexts)
    persona = relevance_gains(turns, [real[i] for i in kept], reference, contexts)
    persona_gain = float(persona.mean())
    result |= {"model_gain": float(model.mean()), "persona_gain": persona_gain}
    if persona_gain > 0:
        result["relevance"] = float(model.mean()) / persona_gain
        result["relevance_stderr"] = float(model.std() / np.sqrt(len(model))) / persona_gain
    return result


def sense_measures(
    turns: list[str],
    real: list[str],
    generated: list[str],
    reference: Reference,
    seed: int = 0,
    contexts: list[str] | None = None,
) -> dict:
    """Every measure for replies `generated[i]` and `real[i]` to the friend's `turns[i]`
    (`contexts[i]`: all the turns before the reply, for the copy rule of relevance)."""
    if not len(turns) == len(real) == len(generated):
        raise ValueError("turns, real and generated replies must pair up")
    relevance = context_relevance(turns, real, generated, reference, contexts)
    return {
        "two_sample_accuracy": _rounded(two_sample_accuracy(real, generated, seed)),
        "non_word_rate": {
            "model": round(non_word_rate(generated, reference), 4),
            "persona": round(non_word_rate(real, reference), 4),
        },
        "context_relevance": {key: _rounded(value) for key, value in relevance.items()},
        "distinct_2": {
            "model": round(distinct_n(generated, 2), 4),
            "persona": round(distinct_n(real, 2), 4),
        },
    }


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value


# ---------------------------------------------------------------- the chitchat reference


def chitchat_turns() -> Iterator[list[str]]:
    """The turns (one sender's messages, joined by newlines) of each chitchat conversation
    that the base model may learn from: no held-out person, no demo persona."""
    from mimical.model.base_model import held_out_conversation
    from mimical.samples.plan import load_chats

    for chat in load_chats():
        if held_out_conversation({sender for sender, _, _ in chat["messages"]}):
            continue
        yield [
            "\n".join(text for _, _, text in messages)
            for _, messages in itertools.groupby(chat["messages"], key=lambda m: m[0])
        ]


def cache_dir() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "mimical"


def cached_reference(path: Path, build: Callable[[], Reference]) -> Reference:
    """The reference stored at `path`, else `build()` it and store it there.

    A damaged file is rebuilt; a cache that cannot be written (read-only home) only
    costs rebuilding next time.
    """
    with contextlib.suppress(OSError, ValueError, KeyError, zipfile.BadZipFile):
        return Reference.load(path)  # else missing or damaged: rebuilt, then replaced
    reference = build()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        reference.save(path)
    return reference


def build_chitchat_reference() -> Reference:
    conversations = list(chitchat_turns())
    return Reference.fit(
        (turn for turns in conversations for turn in turns),
        ((turn, reply) for turns in conversations for turn, reply in itertools.pairwise(turns)),
    )


@functools.cache
def chitchat_reference() -> Reference:
    """The reference learned from chitchat minus held-out conversations (disk-cached)."""
    from mimical.model.base_model import HELD_OUT_RULE

    recipe = (
        REFERENCE_FORMAT,
        metadata.version("chitchat-dataset"),
        HELD_OUT_RULE,
        VOCABULARY_MIN_COUNT,
        ASSOCIATION_MIN_COUNT,
        PMI_SMOOTHING,
    )
    digest = hashlib.sha256(repr(recipe).encode()).hexdigest()[:12]
    return cached_reference(cache_dir() / f"sense-reference-{digest}.npz", build_chitchat_reference)

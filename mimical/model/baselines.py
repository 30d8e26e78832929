"""The replies a reviewer compares a persona model with, each an afternoon's work.

    from mimical.model.baselines import retrieval_replies
    retrieval_replies(train_pairs, ["how was the exam?"])

- retrieval: the person's own training reply whose friend turn is most like the new
  one (TF-IDF cosine over words); the bar a learned model has to clear on relevance;
- random: a random training reply of the person: their voice, no relevance;
- echo: the friend's turn said back; it must fail every sense measure that means
  anything (`mimical.model.sense` gives copied words no credit);
- person: the person's own real replies, in two random halves: the floor of the
  two-sample test (what chance looks like for this person and this many replies).
"""

from __future__ import annotations

import random

import numpy as np

from mimical.corpus.schema import Pair


def retrieval_replies(train: list[Pair], turns: list[str]) -> list[str]:
    """For each friend turn, the training reply whose own friend turn is nearest (TF-IDF
    cosine); an empty turn (an opener) gets one of the person's openers, in turn."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    answered = [p for p in train if p.last_turn.strip()]
    openers = [p.reply for p in train if not p.last_turn.strip()] or [p.reply for p in train]
    vectorizer = TfidfVectorizer(token_pattern=r"[\w']+", sublinear_tf=True)
    index = vectorizer.fit_transform([p.last_turn for p in answered])  # (N, V), rows normed
    queries = vectorizer.transform(turns)  # (Q, V)
    nearest = np.asarray((queries @ index.T).argmax(axis=1)).ravel()
    replies = []
    for row, turn in enumerate(turns):
        if turn.strip() and queries[row].nnz:
            replies.append(answered[nearest[row]].reply)
        else:
            replies.append(openers[row % len(openers)])
    return replies


def random_replies(train: list[Pair], count: int, seed: int) -> list[str]:
    """`count` training replies of the person, drawn with `seed`."""
    rng = random.Random(seed)
    return [rng.choice(train).reply for _ in range(count)]


def echo_replies(turns: list[str]) -> list[str]:
    return list(turns)


def person_halves(real: list[str], seed: int) -> tuple[list[str], list[str]]:
    """The person's real replies in two random halves (by `seed`)."""
    order = list(real)
    random.Random(seed).shuffle(order)
    middle = len(order) // 2
    return order[:middle], order[middle:]

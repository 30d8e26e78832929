"""The sense measures on hand-made replies whose answer is known."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mimical.model.sense import (
    Reference,
    association_scores,
    cached_reference,
    context_relevance,
    distinct_n,
    non_word_rate,
    sense_measures,
    two_sample_accuracy,
)

TOPICS = {
    "pizza": ("do you like pizza", "pizza with cheese is the best"),
    "dog": ("how is your dog doing", "my dog loves the park"),
    "rain": ("is it raining there", "yes rain all day so wet"),
    "exam": ("how did the exam go", "the exam was hard I studied all night"),
    "movie": ("seen any good movie lately", "that movie with the robots was fun"),
    "coffee": ("want to get coffee", "coffee sounds great I need caffeine"),
}
FILLER = [
    "ok",
    "sure",
    "maybe",
    "yeah",
    "well",
    "i",
    "think",
    "so",
    "not",
    "really",
    "sounds",
    "good",
]


def sentences(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choices(FILLER, k=rng.randint(3, 8))) for _ in range(count)]


@pytest.fixture(scope="module")
def reference() -> Reference:
    """Learned from exchanges where each topic's question gets that topic's answer."""
    rng = random.Random(0)
    exchanges = [pair for pair in TOPICS.values() for _ in range(5)]
    exchanges += list(zip(sentences(rng, 40), sentences(rng, 40), strict=True))
    return Reference.fit([text for pair in exchanges for text in pair], exchanges)


def test_identical_sets_cannot_be_told_apart():
    replies = sentences(random.Random(1), 60)
    assert two_sample_accuracy(replies, list(replies)) == pytest.approx(0.5)


def test_samples_of_one_kind_are_near_chance():
    rng = random.Random(2)
    assert 0.3 <= two_sample_accuracy(sentences(rng, 100), sentences(rng, 100)) <= 0.7


def test_obviously_different_replies_are_told_apart():
    rng = random.Random(3)
    shouting = [s.upper() + "!!!" for s in sentences(rng, 50)]
    assert two_sample_accuracy(sentences(rng, 50), shouting) >= 0.95


def test_two_sample_needs_two_replies_a_side():
    assert two_sample_accuracy(["ok"], ["sure", "yes"]) is None


def test_gibberish_is_mostly_non_words(reference):
    assert non_word_rate(["my dog loves pizza", "ok sure"], reference) == 0
    assert non_word_rate(["mmat csuiled dogg", "ok"], reference) == pytest.approx(0.75)
    assert non_word_rate(["", "😀 123"], reference) == 0  # no words at all


def test_a_reply_on_its_context_topic_scores_above_other_contexts(reference):
    contexts = [question for question, _ in TOPICS.values()]
    replies = [answer for _, answer in TOPICS.values()]
    scores = association_scores(contexts, replies, reference)
    others = (scores.sum(axis=0) - np.diag(scores)) / (len(replies) - 1)
    assert (np.diag(scores) > others).all()


def test_relevance_is_one_for_real_replies_and_zero_for_unrelated(reference):
    contexts = [question for question, _ in TOPICS.values()]
    real = [answer for _, answer in TOPICS.values()]
    as_real = context_relevance(contexts, real, list(real), reference)
    assert as_real["relevance"] == pytest.approx(1.0) and as_real["persona_gain"] > 0.4
    assert as_real["relevance_stderr"] == 0  # each reply ranks its own turn first
    gibberish = context_relevance(contexts, real, ["xq zzv"] * len(real), reference)
    assert gibberish["relevance"] == 0 and gibberish["exchanges"] == len(real)
    swapped = context_relevance(contexts, real, real[1:] + real[:1], reference)
    assert swapped["relevance"] <= 0.1  # each reply answers another context: about random


def test_an_echo_of_the_friend_scores_no_better_than_a_random_reply(reference):
    """Words copied from the context earn nothing: saying the friend's turn back is not
    an answer, however strongly its words go with themselves."""
    turns = [question for question, _ in TOPICS.values()]
    real = [answer for _, answer in TOPICS.values()]
    echo = context_relevance(turns, real, list(turns), reference)
    random_reply = context_relevance(turns, real, real[2:] + real[:2], reference)
    assert echo["relevance"] <= random_reply["relevance"]
    assert echo["relevance"] == pytest.approx(-0.5 / echo["persona_gain"])  # the worst rank
    # A reply that repeats the friend's words and adds the right answer still scores.
    echo_and_answer = [f"{turn} {answer}" for turn, answer in zip(turns, real, strict=True)]
    assert context_relevance(turns, real, echo_and_answer, reference)["relevance"] > 0.5


def test_only_the_words_of_the_whole_context_count_as_copied(reference):
    """Relevance is to the friend's last turn; a word from an earlier turn is a copy too."""
    turns = [question for question, _ in TOPICS.values()]
    real = [answer for _, answer in TOPICS.values()]
    contexts = [f"{answer}\n{turn}" for turn, answer in zip(turns, real, strict=True)]
    copied = context_relevance(turns, real, list(real), reference, contexts)
    assert (
        copied["model_gain"] < context_relevance(turns, real, list(real), reference)["model_gain"]
    )


def test_openers_are_skipped_and_too_few_exchanges_give_none(reference):
    relevance = context_relevance(
        ["", "do you like pizza"], ["hi", "pizza!"], ["a", "b"], reference
    )
    assert relevance == {
        "relevance": None,
        "relevance_stderr": None,
        "model_gain": None,
        "persona_gain": None,
        "exchanges": 1,
    }


def test_distinct_n():
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["one", ""], 2) == 0
    assert distinct_n(["ok ok", "ok ok"], 1) == pytest.approx(1 / 4)


def test_sense_measures_pair_up_and_report_each_figure(reference):
    contexts = [question for question, _ in TOPICS.values()]
    real = [answer for _, answer in TOPICS.values()]
    measures = sense_measures(contexts, real, list(real), reference)
    assert measures["two_sample_accuracy"] == pytest.approx(0.5)
    assert measures["non_word_rate"] == {"model": 0, "persona": 0}
    assert measures["context_relevance"]["relevance"] == pytest.approx(1.0)
    assert measures["distinct_2"]["model"] == measures["distinct_2"]["persona"]
    with pytest.raises(ValueError, match="pair up"):
        sense_measures(contexts, real, real[:2], reference)


def test_reference_round_trips_through_a_file(reference, tmp_path):
    path = tmp_path / "reference.npz"
    reference.save(path)
    loaded = Reference.load(path)
    assert loaded.words == reference.words
    assert (loaded.associations != reference.associations).nnz == 0


def test_a_damaged_or_unwritable_cache_is_rebuilt(reference, tmp_path):
    builds = []

    def build():
        builds.append(1)
        return reference

    path = tmp_path / "cache" / "reference.npz"
    assert cached_reference(path, build).words == reference.words and path.is_file()
    assert cached_reference(path, build).words == reference.words and len(builds) == 1
    path.write_bytes(b"not a zip file")
    assert cached_reference(path, build).words == reference.words and len(builds) == 2
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert cached_reference(blocked / "reference.npz", build).words == reference.words


def test_ks_distance_is_scipys_statistic_and_quiet_on_one_reply():
    from scipy.stats import ks_2samp

    from mimical.model.sense import ks_distance

    rng = random.Random(0)
    for _ in range(20):
        a = [rng.randint(0, 20) for _ in range(rng.randint(1, 40))]
        b = [rng.randint(0, 25) for _ in range(rng.randint(1, 40))]
        assert ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic)
    assert ks_distance([3], [3]) == 0 and ks_distance([1], [2]) == 1

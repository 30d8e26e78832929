"""The character 5-gram baseline is a proper probability model."""

from __future__ import annotations

import math

import pytest

from mimical.model.ngram import END, CharNgramModel, bits_per_char

REPLIES = ["haha yeah", "yeah me too", "lol what", "what are you up to", "haha no way"] * 3


@pytest.fixture(scope="module")
def model() -> CharNgramModel:
    return CharNgramModel(order=5).fit(REPLIES)


@pytest.mark.parametrize("history", ["", "hah", "what are", "zzzz"])
def test_probabilities_sum_to_one(model, history):
    alphabet = set("".join(REPLIES)) | {END}
    total = sum(model.probability(history, c) for c in alphabet) + model.probability(history, "€")
    assert math.isclose(total, 1.0, rel_tol=1e-9)


def test_familiar_text_costs_fewer_bits(model):
    assert bits_per_char(model, ["haha yeah"]) < bits_per_char(model, ["qxz vvk"]) / 2


def test_bits_count_the_end_of_turn(model):
    bits, symbols = model.bits("lol")
    assert symbols == 4 and bits > 0

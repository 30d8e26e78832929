"""The decoding calibration moves generated turns towards the person's, and is exported."""

from __future__ import annotations

from mimical.corpus.schema import Pair
from mimical.model.calibrate import calibrate
from mimical.model.model import ModelConfig, Vocabulary, build_keras_model, network_weights


def person_and_untrained_generator(reply: str):
    """Validation pairs of a person who always answers `reply`, and an untrained network
    over the characters of those pairs."""
    from mimical.model.generator import reply_generator

    validation = [Pair("t", i, f"question {i}?", reply, False, f"question {i}?") for i in range(40)]
    vocab = Vocabulary.from_texts([f"question ?\n abcdefghij 0123456789 {reply}"])
    config = ModelConfig(units=16, embedding_dim=8, candidates=2, retrieved=0)
    weights = network_weights(build_keras_model(config, vocab.size), config)
    return validation, vocab, reply_generator(weights, vocab, config)


def test_a_terse_person_gets_an_end_of_turn_bias_that_shortens_replies():
    """An untrained network rambles (the end of the turn is one token of many); a person
    who answers "ok" needs a positive end bias, and the distance to their lengths falls."""
    validation, _, generator = person_and_untrained_generator("ok")
    result = calibrate(generator, validation)
    assert result["end_bias"] > 0
    assert result["length_ks_after"] < result["length_ks_before"]
    assert float(generator.end_bias.numpy()) == result["end_bias"]
    assert float(generator.newline_bias.numpy()) == result["newline_bias"]


def test_a_person_who_sends_emoji_gets_an_emoji_bias():
    """An untrained network almost never picks an emoji among its characters; a person
    who puts one in every reply needs a positive emoji bias, and the gap closes."""
    from mimical.model.generator import emoji_token_ids

    validation, vocab, generator = person_and_untrained_generator("ok 😂")
    assert len(emoji_token_ids(vocab)) == 1
    result = calibrate(generator, validation)
    assert result["emoji_bias"] > 0
    assert result["emoji_gap_after"] < result["emoji_gap_before"]
    assert float(generator.emoji_bias.numpy()) == result["emoji_bias"]


def test_emoji_tokens_are_the_emoji_pieces_and_the_four_byte_lead():
    from mimical.model.base_model import BASE_DIR
    from mimical.model.generator import emoji_token_ids
    from mimical.model.tokenizer import COMMON_EMOJI, FOUR_BYTE_LEAD, SPECIAL_TOKENS, Tokenizer

    tokenizer = Tokenizer.load(BASE_DIR / "tokenizer.json")
    emoji = set(emoji_token_ids(tokenizer))
    assert {tokenizer.encode(e)[0] for e in COMMON_EMOJI} <= emoji
    assert SPECIAL_TOKENS + tokenizer.pieces.index(FOUR_BYTE_LEAD) in emoji
    assert not emoji & set(tokenizer.encode("hello there, how are you? :) 123\n"))


def test_the_calibration_travels_in_the_export(tiny_model):
    from mimical.model.export import load_export, read_extra

    calibration = tiny_model.metrics["calibration"]
    config = read_extra(tiny_model.export_dir, "config.json")
    loaded = load_export(tiny_model.export_dir)
    assert float(loaded.end_bias.numpy()) == calibration["end_bias"] == config["end_bias"]
    assert (
        float(loaded.newline_bias.numpy()) == calibration["newline_bias"] == config["newline_bias"]
    )
    assert float(loaded.emoji_bias.numpy()) == calibration["emoji_bias"] == config["emoji_bias"]
    after = ("length_ks_after", "lines_ks_after", "emoji_gap_after")
    before = ("length_ks_before", "lines_ks_before", "emoji_gap_before")
    assert sum(calibration[k] for k in after) <= sum(calibration[k] for k in before)

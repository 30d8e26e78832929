"""The held-out rule that keeps evaluation people out of the base model."""

from __future__ import annotations

import hashlib

import pytest

from mimical.model.base_model import held_out_conversation, is_held_out
from mimical.samples.plan import DEMO_PERSONA


def test_held_out_people_are_those_whose_id_digest_starts_with_b_or_c():
    ids = [f"sender-{i}" for i in range(200)]
    expected = [i for i in ids if hashlib.sha256(i.encode()).hexdigest()[0] in "bc"]
    assert [i for i in ids if is_held_out(i)] == expected
    assert 0 < len(expected) < 100


def test_a_conversation_with_a_held_out_person_or_the_demo_persona_is_left_out():
    kept = next(f"s{i}" for i in range(100) if not is_held_out(f"s{i}"))
    held = next(f"s{i}" for i in range(100) if is_held_out(f"s{i}"))
    assert not held_out_conversation([kept])
    assert held_out_conversation([kept, held])
    assert held_out_conversation([kept, DEMO_PERSONA])


def test_pretraining_pairs_read_each_turn_once_and_evaluation_pairs_every_turn():
    from mimical.model.pretrain import conversation_pairs

    turns = [("a" if i % 2 else "b", f"turn {i}") for i in range(9)]
    once = conversation_pairs(turns, offset=1)
    assert [p.reply for p in once] == ["turn 1", "turn 5"]
    # turn 5 is a's: a's own turn 3 is marked apart from b's turns 2 and 4.
    assert once[1].context == "\x1eturn 2\x1dturn 3\x1eturn 4"
    every = conversation_pairs(turns)
    assert [p.reply for p in every] == [f"turn {i}" for i in range(9)]
    assert every[0].context == "" and every[0].starts


def test_the_shipped_base_describes_itself_and_round_trips(tmp_path):
    import json

    from mimical.model.base_model import BASE_DIR, load_base, save_base

    base = load_base()
    info = json.loads((BASE_DIR / "base.json").read_text())
    assert base.version == info["version"] and "sha256" in info["held_out_rule"]
    assert info["metrics"]["held_out_people_bits_per_char"] > 0
    assert sum(p.stat().st_size for p in BASE_DIR.iterdir()) < 15_000_000
    save_base(tmp_path / "copy", base.config, base.tokenizer, base.weights, base.info)
    copy = load_base(tmp_path / "copy")
    assert copy.config == base.config and copy.tokenizer.pieces == base.tokenizer.pieces
    assert all((copy.weights[k] == base.weights[k]).all() for k in base.weights)


def test_a_missing_base_is_a_clear_error(tmp_path):
    from mimical.errors import NotFoundError
    from mimical.model.base_model import load_base

    with pytest.raises(NotFoundError, match="mimical pretrain"):
        load_base(tmp_path)


def test_cli_pretrain_refuses_bad_options(capsys):
    from mimical.cli import main

    assert main(["pretrain", "--max-minutes", "0"]) == 2
    assert main(["pretrain", "--vocab-size", "100"]) == 2
    assert main(["pretrain", "--passes", "0"]) == 2
    assert "--passes must be at least 1" in capsys.readouterr().err
    assert main(["pretrain", "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert main(["pretrain", "--units", "8"]) == 2
    assert "--units must be between 16 and 4096" in capsys.readouterr().err

"""The held-out rule that keeps evaluation people out of the base model."""

from __future__ import annotations

import hashlib

import pytest

from mimical.model.base_model import (
    BENCH_PEOPLE,
    development_conversation,
    held_out_conversation,
    is_held_out,
)
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
    metrics = info["metrics"]
    assert (
        metrics.get("development_bits_per_char", metrics.get("held_out_people_bits_per_char")) > 0
    )
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


def _person(letter: str, start: int = 0) -> str:
    """A sender id whose digest starts with `letter`."""
    return next(
        f"s{i}"
        for i in range(start, 10_000)
        if hashlib.sha256(f"s{i}".encode()).hexdigest()[0] == letter
    )


def test_the_development_group_is_the_b_slice_without_the_bench_or_the_test_slice():
    base, development, test = _person("0"), _person("b"), _person("c")
    assert development_conversation([base, development])
    assert not development_conversation([base])
    assert not development_conversation([development, test])  # a test person's words
    assert not development_conversation([test])
    assert not development_conversation([development, DEMO_PERSONA])
    bench_b = BENCH_PEOPLE["5000"]
    assert hashlib.sha256(bench_b.encode()).hexdigest()[0] == "b"
    assert not development_conversation([base, bench_b])


def test_no_sender_makes_more_than_its_share_of_the_pretraining_replies():
    import random

    from mimical.model import pretrain

    talkative = [{"turns": [("a", f"t{i}") for i in range(400)]}]
    others = [{"turns": [(f"p{n}", "x"), (f"q{n}", "y")] * 10} for n in range(60)]
    pairs = pretrain.training_pairs(talkative + others, 4, random.Random(0))
    from_a = sum(p.reply.startswith("t") for p in pairs)
    assert from_a == int(pretrain.MAX_SENDER_SHARE * (400 + 60 * 20))
    assert len(pairs) == from_a + 60 * 20  # everyone else is kept whole


def _tiny_conversations() -> list[dict]:
    """Chats of base people and of a development person: what pretraining reads."""
    lines = ["hey how are you", "good and you?", "fine thanks", "what are you up to", "not much"]
    people = [_person("0"), _person("1"), _person("b")]
    conversations = []
    for number in range(30):
        pair = [people[number % 2], people[2] if number % 5 == 0 else people[(number + 1) % 2]]
        turns = [(pair[i % 2], lines[(number + i) % len(lines)]) for i in range(8)]
        conversations.append(
            {"id": f"{number:02x}aa", "senders": sorted(set(pair)), "turns": turns}
        )
    return conversations


def test_pretraining_resumes_its_checkpoint_or_the_base_it_wrote(tmp_path, monkeypatch):
    """`--resume` continues a run: from its checkpoint on the same machine, else (the
    checkpoints lost with the machine) from the base artifact it wrote; every session
    is recorded in base.json."""
    from dataclasses import replace

    from mimical.model import pretrain

    monkeypatch.setattr(pretrain, "base_conversations", _tiny_conversations)
    config = replace(
        pretrain.BASE_CONFIG, units=16, embedding_dim=8, projection_dim=8, attention_dim=8
    )
    options = dict(checkpoints=tmp_path / "checkpoints", vocab_size=300, epochs=2, config=config)
    first = pretrain.pretrain(tmp_path / "base", **options)
    assert first["sessions"][0]["started_from"] == "random"
    assert first["metrics"]["development_context_use"]["bits_per_reply"] is not None
    steps = first["metrics"]["steps"]

    resumed = pretrain.pretrain(tmp_path / "base", resume=True, **{**options, "epochs": 4})
    assert [s["started_from"] for s in resumed["sessions"]] == ["random", "checkpoint"]
    assert resumed["sessions"][1]["first_step"] == steps
    assert resumed["metrics"]["steps"] == 2 * steps

    import shutil

    from mimical.model.base_model import load_base

    load_base.cache_clear()
    shutil.rmtree(tmp_path / "checkpoints")  # another machine
    moved = pretrain.pretrain(tmp_path / "base", resume=True, **{**options, "epochs": 1})
    assert [s["started_from"] for s in moved["sessions"]] == ["random", "checkpoint", "base"]
    assert moved["metrics"]["cpu_hours"] >= resumed["metrics"]["cpu_hours"]


def test_cli_pretrain_refuses_a_bad_attention_or_window(capsys):
    from mimical.cli import main

    assert main(["pretrain", "--attention-dim", "6"]) == 2
    assert "--attention-dim must be a multiple of 4" in capsys.readouterr().err
    assert main(["pretrain", "--context-tokens", "4"]) == 2
    assert "--context-tokens must be between 8 and 512" in capsys.readouterr().err

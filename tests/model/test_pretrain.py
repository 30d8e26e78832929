"""The held-out rule that keeps evaluation people out of the base model."""

from __future__ import annotations

import hashlib

from mimical.model.pretrain import held_out_conversation, is_held_out
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

"""Every sample export format imports to exactly the counts its plan says it contains."""

from __future__ import annotations

import itertools
import subprocess
import sys

import orjson
import pytest

from mimical.corpus.importer import import_exports
from mimical.corpus.schema import read_corpus, training_pairs
from mimical.corpus.segment import GAP_THRESHOLD_SECONDS
from mimical.samples.plan import (
    DEMO_PERSONA_NAME,
    SAMPLE_FORMATS,
    SamplePlan,
    build_sample,
)
from tests.fixtures.corpus import SMALL_EXPORT_CONVERSATIONS


def expected_segments(plan: SamplePlan, gap: float = GAP_THRESHOLD_SECONDS) -> dict:
    """Conversations, turns, pairs and openers counted straight from the plan."""
    counts = dict.fromkeys(("conversations", "turns", "pairs", "persona_starts"), 0)
    for thread in plan.threads:
        previous_time = previous_sender = None
        opening = False
        for message in sorted(plan.kept(thread), key=lambda m: m.time):
            if previous_time is None or message.time - previous_time > gap:
                counts["conversations"] += 1
                previous_sender, opening = None, True
            if message.sender != previous_sender:
                counts["turns"] += 1
                if message.sender == plan.persona:
                    counts["pairs"] += 1
                    counts["persona_starts"] += opening
                opening = False
            previous_time, previous_sender = message.time, message.sender
    return counts


@pytest.fixture(scope="module", params=SAMPLE_FORMATS)
def imported(request, sample_export, tmp_path_factory):
    format = request.param
    corpus = tmp_path_factory.mktemp(format) / "corpus.jsonl"
    stats = import_exports(sample_export(format), corpus)
    return format, stats, corpus, build_sample(format, max_conversations=SMALL_EXPORT_CONVERSATIONS)


def test_stats_match_the_export(imported):
    format, stats, _, plan = imported
    assert stats["format"] == (
        "whatsapp-" + format.split("-")[1] if "whatsapp" in format else format
    )
    assert stats["persona"] == plan.persona == DEMO_PERSONA_NAME
    assert stats["threads"] == len(plan.threads)
    assert stats["messages"] == plan.messages
    assert stats["persona_messages"] == plan.persona_messages
    nonzero_skips = {reason: n for reason, n in stats["skipped"].items() if n}
    assert nonzero_skips == dict(plan.skipped)
    for key, value in expected_segments(plan).items():
        assert stats[key] == value, key


def test_personal_data_is_scrubbed(imported):
    _, stats, corpus, plan = imported
    text = corpus.read_text(encoding="utf-8")
    for kind, injected in plan.injected_pii.items():
        assert stats["scrubbed"][kind] >= injected > 0
    for secret in ("@example.com", "7946 0958", "4111 1111", "DE89 3704", "dQw4w9WgXcQ"):
        assert secret not in text
    assert "<URL:youtube.com>" in text and "<IBAN>" in text and "<CARD>" in text


def test_corpus_records_are_well_formed(imported):
    _, stats, corpus, plan = imported
    records = list(read_corpus(corpus))
    assert len(records) == stats["messages"]
    texts = "\n".join(r.text for r in records)
    assert "😂" in texts and "café" in texts  # non-ASCII survives every format's encoding
    assert "Ã" not in texts and "\u200e" not in texts and "\ufffd" not in texts
    assert any("\n" in r.text for r in records)  # multi-line messages stay whole
    for _, group in itertools.groupby(records, key=lambda r: r.thread):
        messages = list(group)
        assert [m.time for m in messages] == sorted(m.time for m in messages)
        assert all(m.time.endswith("Z") for m in messages)
        for message in messages:
            assert message.persona == (message.sender == plan.persona)
            assert message.starts == (message.persona and message.turn == 0)
    assert sum(1 for _ in training_pairs(records)) == stats["pairs"]


def test_persona_starts_have_no_context(imported):
    _, stats, corpus, _ = imported
    pairs = list(training_pairs(read_corpus(corpus)))
    openers = [pair for pair in pairs if pair.starts]
    assert len(openers) == stats["persona_starts"] > 0
    assert all(pair.context == "" for pair in openers)
    assert all(pair.context for pair in pairs if not pair.starts)


def test_small_corpus_fixture(small_corpus):
    records = list(read_corpus(small_corpus))
    assert len({(r.thread, r.conversation) for r in records}) > 150
    assert sum(r.persona for r in records) > 5000
    first = orjson.loads(small_corpus.read_bytes().split(b"\n", 1)[0])
    assert set(first) == {
        "thread",
        "conversation",
        "turn",
        "sender",
        "persona",
        "time",
        "text",
        "starts",
    }


def test_the_importer_does_without_the_sample_generators():
    code = (
        "import sys, mimical.corpus.importer, mimical.corpus.cli;"
        "print([name for name in sys.modules if name.startswith('mimical.samples')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_pairs_context_marks_each_turn_as_the_persona_s_own_or_another_s():
    from mimical.corpus.schema import CorpusMessage, context_messages

    def message(turn: int, persona: bool, text: str) -> CorpusMessage:
        return CorpusMessage("t", 0, turn, "me" if persona else "ann", persona, "", text)

    chat = [
        message(0, False, "hi"),
        message(1, True, "hey"),
        message(2, False, "how are you"),
        message(2, False, "tired? \x1e"),
        message(3, True, "fine"),
    ]
    first, second = training_pairs(chat)
    assert first.context == "\x1ehi" and first.last_turn == "hi"
    # A turn's messages stay joined by a newline; a marker inside a text is not a turn.
    assert second.context == "\x1ehi\x1dhey\x1ehow are you\ntired?  "
    assert second.last_turn == "how are you\ntired? \x1e"
    assert context_messages(second.context) == ["hi", "hey", "how are you", "tired?  "]


def test_a_laid_out_context_reads_back_as_its_turns():
    from mimical.corpus.schema import context_turns, layout_context, readable_context

    turns = [(False, "hi\nthere"), (True, "hey"), (False, "how are you")]
    assert context_turns(layout_context(turns)) == turns
    assert context_turns("") == [] and readable_context("") == ""
    assert readable_context(layout_context(turns[1:])) == "me: hey\nthem: how are you"

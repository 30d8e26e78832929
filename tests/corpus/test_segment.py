"""Conversations, turns and openers."""

from __future__ import annotations

from mimical.corpus.chat import ChatMessage, ChatThread
from mimical.corpus.gaps import gap_table
from mimical.corpus.segment import GAP_THRESHOLD_SECONDS, SegmentCounts, segment_thread


def thread(*messages) -> ChatThread:
    return ChatThread(
        id="t", title="t", format="test", messages=[ChatMessage(s, t, x) for s, t, x in messages]
    )


def test_conversations_turns_and_starts():
    hour = GAP_THRESHOLD_SECONDS
    chat = thread(
        ("Bob", 0, "hi"),
        ("Bob", 10, "you there?"),
        ("Me", 20, "yes"),
        ("Me", 30, "what's up"),
        ("Bob", 30 + hour, "still on?"),  # exactly the threshold later: same conversation
        ("Me", 41 + 3 * hour, "morning!"),
        ("Bob", 50 + 3 * hour, "hey"),
    )
    counts = SegmentCounts()
    rows = segment_thread(chat, frozenset({"Me"}), counts, transform=str.upper)
    assert [(r["conversation"], r["turn"], r["persona"], r["starts"]) for r in rows] == [
        (0, 0, False, False),
        (0, 0, False, False),
        (0, 1, True, False),
        (0, 1, True, False),
        (0, 2, False, False),
        (1, 0, True, True),
        (1, 1, False, False),
    ]
    assert rows[0]["text"] == "HI" and rows[0]["time"] == "1970-01-01T00:00:00Z"
    assert counts == SegmentCounts(
        messages=7, persona_messages=3, conversations=2, turns=5, pairs=2, persona_starts=1
    )


def test_default_gap_is_the_one_the_data_supports():
    rows = gap_table()
    best = min(rows, key=lambda row: row["misfiled"])
    assert best["threshold_s"] == GAP_THRESHOLD_SECONDS

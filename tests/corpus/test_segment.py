"""Conversations, turns and openers."""

from __future__ import annotations

import orjson

from mimical.corpus.schema import CorpusMessage, read_corpus, record_lines, write_lines
from mimical.corpus.segment import GAP_THRESHOLD_SECONDS, SegmentCounts, corpus_records
from mimical.corpus.threads import ChatMessage, ChatThread
from mimical.samples.gaps import gap_table


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
    upper = lambda texts: [text.upper() for text in texts]  # noqa: E731
    records = corpus_records(chat, frozenset({"Me"}), counts, scrub=upper)
    rows = [orjson.loads(line) for line in record_lines(records).splitlines()]
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


def test_lines_are_the_records_fields_in_order(tmp_path):
    chat = thread(
        ("Bob", 1_700_000_000.9, 'tricky "quotes", backslash \\'),
        ("Bob", 1_700_000_061, "ends with a backslash \\"),
        ("Me", 1_700_003_600, "caf\u00e9 \U0001f602 tab\tnew\nline"),
        ("Me", -1.5, 'before 1970 ","'),
    )
    chat.messages.sort(key=lambda m: m.time)
    records = list(corpus_records(chat, frozenset({"Me"}), SegmentCounts()))
    lines = record_lines(records)
    write_lines([lines], tmp_path / "corpus.jsonl")
    assert list(read_corpus(tmp_path / "corpus.jsonl")) == records
    rows = [orjson.loads(line) for line in lines.splitlines()]
    assert [list(row) for row in rows] == [list(CorpusMessage.__dataclass_fields__)] * 4
    assert lines == b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows)
    assert [row["time"] for row in rows] == [
        "1969-12-31T23:59:59Z",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:14:21Z",
        "2023-11-14T23:13:20Z",
    ]
    assert [row["text"] for row in rows] == [m.text for m in chat.messages]

"""Telegram Desktop result.json: full and single-chat exports."""

from __future__ import annotations

import json

import pytest

from mimical.corpus.importer import import_exports
from mimical.corpus.schema import read_corpus
from mimical.errors import InputError


def message(number, sender, sender_id, text, **fields):
    return {
        "id": number,
        "type": "message",
        "date": "2024-02-01T10:00:00",
        "date_unixtime": str(1706781600 + number * 60),
        "from": sender,
        "from_id": sender_id,
        "text": text,
        **fields,
    }


CHAT = {
    "name": "Bob Roe",
    "type": "personal_chat",
    "id": 42,
    "messages": [
        message(1, "Bob Roe", "user2", "hi"),
        message(
            2,
            "Ann",
            "user1",
            ["look ", {"type": "bold", "text": "here"}, {"type": "link", "text": "https://t.me/x"}],
        ),
        {
            "id": 3,
            "type": "service",
            "date": "2024-02-01T10:03:00",
            "date_unixtime": "1706781780",
            "actor": "Ann",
            "actor_id": "user1",
            "action": "phone_call",
            "text": "",
        },
        message(4, "Bob Roe", "user2", "", media_type="sticker", file="s.webp"),
        message(5, "Bob Roe", "user2", "", photo="photos/1.jpg"),
        message(6, "Bob Roe", "user2", "caption kept", photo="photos/2.jpg"),
        message(7, "Ann", "user1", "someone else's words", forwarded_from="Channel"),
        message(8, "Ann", "user1", "fixed typo", edited="2024-02-01T10:09:00"),
        message(9, None, "user3", "from a deleted account"),
    ],
}


def test_full_export(tmp_path):
    export = {
        "personal_information": {"user_id": 1, "first_name": "Ann", "last_name": ""},
        "chats": {
            "list": [
                CHAT,
                {
                    "type": "saved_messages",
                    "id": 1,
                    "messages": [message(1, "Ann", "user1", "memo")],
                },
                {
                    "name": "News",
                    "type": "public_channel",
                    "id": 9,
                    "messages": [message(1, "News", "channel9", "headline")],
                },
            ]
        },
        "left_chats": {
            "list": [
                {
                    "name": "Old group",
                    "type": "private_group",
                    "id": 7,
                    "messages": [message(1, "Ann", "user1", "bye all")],
                }
            ]
        },
    }
    (tmp_path / "result.json").write_text(json.dumps(export), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    stats = import_exports(tmp_path, out)
    rows = list(read_corpus(out))
    assert stats["format"] == "telegram" and stats["persona"] == "Ann"
    assert [(r.sender, r.text) for r in rows] == [
        ("Bob Roe", "hi"),
        ("Ann", "look here<URL:t.me>"),
        ("Bob Roe", "caption kept"),
        ("Ann", "fixed typo"),
        ("Deleted Account", "from a deleted account"),
        ("Ann", "bye all"),
    ]
    assert rows[0].thread == "telegram:42"
    assert {k: v for k, v in stats["skipped"].items() if v} == {
        "system": 1,
        "sticker": 1,
        "media": 1,
        "forwarded": 1,
        "thread": 2,
    }


def test_single_chat_export_needs_me(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps(CHAT), encoding="utf-8")
    with pytest.raises(InputError, match="pass --me NAME"):
        import_exports(tmp_path / "result.json", tmp_path / "out.jsonl")
    stats = import_exports(tmp_path / "result.json", tmp_path / "out.jsonl", me="Ann")
    assert stats["persona_messages"] == 2


def test_truncated_result_json(tmp_path):
    data = json.dumps(
        {"personal_information": {"user_id": 1, "first_name": "Ann"}, "chats": {"list": [CHAT]}}
    )
    (tmp_path / "result.json").write_text(data[: len(data) // 2], encoding="utf-8")
    with pytest.raises(InputError, match="result.json: corrupt JSON"):
        import_exports(tmp_path, tmp_path / "out.jsonl")

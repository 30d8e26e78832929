"""Messenger DYI and E2EE exports: layouts, pagination, mojibake, skipped messages."""

from __future__ import annotations

import json
import os
import shutil
import zipfile

import pytest

from mimical.corpus.facebook_export import fix_mojibake
from mimical.corpus.importer import import_exports
from mimical.corpus.schema import read_corpus
from mimical.errors import InputError, TooLargeError
from mimical.samples.export import write_sample_export
from mimical.samples.plan import DEMO_PERSONA_NAME, build_sample
from mimical.samples.writers import mojibake_json


def page(messages, participants=("Ann Lée", "Bob Roe"), title="Bob Roe") -> bytes:
    return mojibake_json(
        {"participants": [{"name": n} for n in participants], "messages": messages, "title": title}
    )


def msg(sender, seconds, **fields):
    return {"sender_name": sender, "timestamp_ms": seconds * 1000, **fields}


def import_dir(tmp_path, root, **kwargs):
    out = tmp_path / "out.jsonl"
    stats = import_exports(root, out, **kwargs)
    return stats, list(read_corpus(out))


def test_fix_mojibake():
    assert fix_mojibake("caf\u00c3\u00a9 \u00f0\u009f\u0098\u0082") == "café 😂"
    assert fix_mojibake("already “fine” é") == "already “fine” é"  # not Latin-1: untouched
    assert fix_mojibake("plain") == "plain"


def test_pages_newest_first_are_merged_in_order(tmp_path):
    thread = tmp_path / "your_facebook_activity/messages/inbox/bobroe_123"
    thread.mkdir(parents=True)
    # message_1 holds the newest messages, each page newest first.
    (thread / "message_1.json").write_bytes(
        page([msg("Ann Lée", 400, content="four 😂"), msg("Bob Roe", 300, content="three")])
    )
    (thread / "message_2.json").write_bytes(
        page([msg("Ann Lée", 200, content="two café"), msg("Bob Roe", 100, content="one")])
    )
    stats, rows = import_dir(tmp_path, tmp_path, me="Ann Lée")
    assert [r.text for r in rows] == ["one", "two café", "three", "four 😂"]
    assert [r.turn for r in rows] == [0, 1, 2, 3]
    assert rows[1].sender == "Ann Lée" and rows[1].persona
    assert rows[0].thread == "messenger:inbox/bobroe_123"
    assert stats["threads"] == 1 and stats["pairs"] == 2


def test_every_kind_of_non_text_message_is_skipped(tmp_path):
    thread = tmp_path / "messages/inbox/bob_1"
    thread.mkdir(parents=True)
    skipped = [
        msg("Bob Roe", 1, photos=[{"uri": "p.jpg"}]),
        msg("Bob Roe", 2, videos=[{"uri": "v.mp4"}], content="Bob Roe sent a video."),
        msg("Bob Roe", 3, gifs=[{"uri": "g.gif"}]),
        msg("Bob Roe", 4, audio_files=[{"uri": "a.mp4"}]),
        msg("Bob Roe", 5, files=[{"uri": "f.pdf"}]),
        msg("Bob Roe", 6, sticker={"uri": "s.png"}),
        msg("Bob Roe", 7, content="Bob Roe started a video chat.", call_duration=12, type="Call"),
        msg("Ann Lée", 8, content="", is_unsent=True),
        msg("Ann Lée", 9, content="You unsent a message"),
        msg("Bob Roe", 10, content="Bob Roe reacted ❤ to your message "),
        msg("Ann Lée", 11, content="You sent an attachment."),
        msg("Bob Roe", 12, content="Bob Roe sent a photo."),
        msg(
            "Bob Roe",
            13,
            content="https://x.com/a",
            share={"link": "https://x.com/a"},
            type="Share",
        ),
        msg("Bob Roe", 14, content="Bob Roe named the group Fun.", type="Generic"),
        msg("Bob Roe", 15, type="Subscribe", content="Bob Roe added Cat to the group."),
        msg("Ann Lée", 16, content="You are now connected on Messenger"),
        msg("Bob Roe", 17),
    ]
    kept = [
        msg(
            "Bob Roe", 20, content="look at this!", share={"link": "https://x.com/b"}, type="Share"
        ),
        msg(
            "Ann Lée",
            21,
            content="You sent a photo of your cat? cute",
            reactions=[{"reaction": "\u2764", "actor": "Bob Roe"}],
        ),
    ]
    (thread / "message_1.json").write_bytes(page(list(reversed(skipped + kept))))
    stats, rows = import_dir(tmp_path, tmp_path, me="Ann Lée")
    assert [r.text for r in rows] == ["look at this!", "You sent a photo of your cat? cute"]
    assert {k: v for k, v in stats["skipped"].items() if v} == {
        "media": 5,
        "sticker": 1,
        "call": 1,
        "unsent": 2,
        "reaction": 1,
        "placeholder": 2,
        "share": 1,
        "system": 3,
        "empty": 1,
    }


def test_persona_from_profile_information_in_both_layouts(sample_export, tmp_path):
    legacy = write_sample_export(
        "messenger", tmp_path / "legacy", max_conversations=12, legacy_layout=True
    )
    assert (legacy / "messages/inbox").is_dir()
    assert (legacy / "profile_information/profile_information.json").is_file()
    stats, _ = import_dir(tmp_path, legacy)
    assert stats["persona"] == DEMO_PERSONA_NAME
    plan = build_sample("messenger", max_conversations=12)
    assert stats["messages"] == plan.messages


def test_all_folders_are_read(sample_export):
    export = sample_export("messenger")
    folders = {p.parent.parent.name for p in export.rglob("message_1.json")}
    assert folders == {
        "inbox",
        "archived_threads",
        "filtered_threads",
        "message_requests",
        "e2ee_cutover",
    }
    assert any(p.name == "message_2.json" for p in export.rglob("*.json"))


def test_without_profile_the_persona_is_in_every_thread(sample_export, tmp_path):
    export = shutil.copytree(sample_export("messenger"), tmp_path / "export")
    shutil.rmtree(export / "personal_information")
    stats, _ = import_dir(tmp_path, export)
    assert stats["persona"] == DEMO_PERSONA_NAME


def test_multi_part_zips_and_e2ee_together(sample_export, tmp_path):
    """Facebook splits big exports into several zips; pages of one thread may be split too."""
    export = sample_export("messenger")
    files = sorted(p for p in export.rglob("*") if p.is_file())
    for part in (1, 2):
        with zipfile.ZipFile(tmp_path / f"facebook-ann-part{part}.zip", "w") as archive:
            for index, path in enumerate(files):
                if index % 2 == part - 1:
                    archive.write(path, path.relative_to(export).as_posix())
    e2ee = sample_export("messenger-e2ee")
    out = tmp_path / "out.jsonl"
    stats = import_exports(
        [tmp_path / "facebook-ann-part1.zip", tmp_path / "facebook-ann-part2.zip", e2ee], out
    )
    plan = build_sample("messenger", max_conversations=40)
    e2ee_plan = build_sample("messenger-e2ee", max_conversations=40)
    assert stats["format"] == "messenger+messenger-e2ee"
    assert stats["messages"] == plan.messages + e2ee_plan.messages
    assert stats["threads"] == 2 * len(plan.threads)


def test_e2ee_thread_file(tmp_path):
    data = {
        "participants": ["Ann Lée", "Bob Roe"],
        "threadName": "Bob Roe",
        "messages": [
            {
                "senderName": "Bob Roe",
                "text": "salut ça va",
                "timestamp": 2000,
                "type": "text",
                "isUnsent": False,
                "media": [],
                "reactions": [],
            },
            {
                "senderName": "Ann Lée",
                "text": "",
                "timestamp": 3000,
                "type": "media",
                "isUnsent": False,
                "media": [{"uri": "media/1.jpg"}],
                "reactions": [],
            },
            {
                "senderName": "Ann Lée",
                "text": "",
                "timestamp": 4000,
                "type": "text",
                "isUnsent": True,
                "media": [],
                "reactions": [],
            },
            {
                "senderName": "Ann Lée",
                "text": "oui",
                "timestamp": 1000,
                "type": "text",
                "isUnsent": False,
                "media": [],
                "reactions": [{"reaction": "👍", "actor": "Bob Roe"}],
            },
            {"senderName": "Bob Roe", "text": "", "timestamp": 5000, "type": "sticker"},
            {
                "senderName": "Bob Roe",
                "text": "Bob Roe named the group X",
                "timestamp": 6000,
                "type": "admin",
            },
            {
                "senderName": "Bob Roe",
                "text": "Bob Roe reacted 😂 to your message",
                "timestamp": 7000,
                "type": "text",
            },
            {
                "senderName": "Bob Roe",
                "text": "see this",
                "timestamp": 8000,
                "type": "image",
                "media": [{"uri": "media/2.jpg"}],
            },
        ],
    }
    (tmp_path / "bob_roe_1.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    stats, rows = import_dir(tmp_path, tmp_path / "bob_roe_1.json", me="Ann Lée")
    assert stats["format"] == "messenger-e2ee"
    assert [r.text for r in rows] == ["oui", "salut ça va", "see this"]  # sorted by time
    assert {k: v for k, v in stats["skipped"].items() if v} == {
        "media": 1,
        "unsent": 1,
        "sticker": 1,
        "system": 1,
        "reaction": 1,
    }


def test_truncated_page_names_the_file(sample_export, tmp_path):
    export = shutil.copytree(sample_export("messenger", 12), tmp_path / "export")
    victim = sorted(export.rglob("message_1.json"))[0]
    victim.write_bytes(victim.read_bytes()[:-50])
    with pytest.raises(InputError, match=f"{victim}: corrupt JSON"):
        import_exports(export, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_worker_processes_write_the_same_corpus(sample_export, tmp_path):
    export = sample_export("messenger")
    archive = tmp_path / "facebook-me.zip"
    with zipfile.ZipFile(archive, "w") as zipped:  # workers must open their own handle
        for path in sorted(export.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(export).as_posix())
    one = import_exports(archive, tmp_path / "one.jsonl", workers=1)
    two = import_exports(archive, tmp_path / "two.jsonl", workers=2)
    assert {**two, "output": ""} == {**one, "output": ""}
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


def test_where_fork_does_not_exist_workers_read_in_this_process(
    sample_export, tmp_path, monkeypatch
):
    import multiprocessing

    from mimical.corpus import workers

    # As on Windows (no fork) and macOS (no sched_getaffinity); a worker would die here.
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(workers, "_read_thread", die)
    export = sample_export("messenger")
    default = import_exports(export, tmp_path / "default.jsonl")
    asked = import_exports(export, tmp_path / "asked.jsonl", workers=2)
    assert {**asked, "output": ""} == {**default, "output": ""}
    assert (tmp_path / "asked.jsonl").read_bytes() == (tmp_path / "default.jsonl").read_bytes()


def test_errors_in_worker_processes_reach_the_caller(tmp_path):
    for number in range(1, 4):
        thread = tmp_path / f"messages/inbox/bob{number}_1/message_1.json"
        thread.parent.mkdir(parents=True)
        thread.write_bytes(page([msg("Ann Lée", 1, content="hi"), msg("Bob Roe", 2, content="yo")]))
    thread.write_bytes(b'{"messages": [')
    with pytest.raises(InputError, match="bob3_1/message_1.json: corrupt JSON"):
        import_exports(tmp_path, tmp_path / "out.jsonl", workers=2, me="Ann Lée")
    assert not (tmp_path / "out.jsonl").exists()


def die(job):
    os._exit(1)  # as if the kernel killed the worker for memory


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path, monkeypatch):
    from mimical.corpus import workers

    thread = tmp_path / "messages/inbox/bob_1/message_1.json"
    thread.parent.mkdir(parents=True)
    thread.write_bytes(page([msg("Ann Lée", 1, content="hi"), msg("Bob Roe", 2, content="yo")]))
    monkeypatch.setattr(workers, "_read_thread", die)
    # A thread left by an earlier test in this pytest worker would keep the import in-process.
    monkeypatch.setattr(workers, "can_fork", lambda: True)
    with pytest.raises(TooLargeError, match="died"):
        import_exports(tmp_path, tmp_path / "out.jsonl", workers=2, me="Ann Lée")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("timestamp_ms", [1e22, -1e14])
def test_a_time_that_is_no_message_time_names_the_file(tmp_path, timestamp_ms):
    thread = tmp_path / "messages/inbox/bob_1/message_1.json"
    thread.parent.mkdir(parents=True)
    thread.write_bytes(page([msg("Ann Lée", 1, content="hi"), msg("Bob Roe", 0, content="yo")]))
    thread.write_bytes(
        thread.read_bytes().replace(b'"timestamp_ms": 0', b'"timestamp_ms": %r' % timestamp_ms)
    )
    with pytest.raises(InputError, match=f"{thread}: a timestamp_ms that is not a message time"):
        import_exports(tmp_path, tmp_path / "out.jsonl", me="Ann Lée")
    assert not (tmp_path / "out.jsonl").exists()

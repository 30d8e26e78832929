"""WhatsApp text exports: header styles, date orders, invisible marks, skipped lines."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime

import pytest

from mimical.corpus.importer import import_exports
from mimical.corpus.schema import read_corpus
from mimical.errors import InputError

LRM, NNBSP, NBSP = "\u200e", "\u202f", "\u00a0"


def write(path, lines, newline="\n", encoding="utf-8", bom=False):
    data = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode(encoding))
    return path


def records(tmp_path, *paths, me="Ann Lee", **kwargs):
    out = tmp_path / "out.jsonl"
    stats = import_exports(list(paths), out, me=me, **kwargs)
    return stats, list(read_corpus(out))


def iso(*args) -> str:
    return datetime(*args, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_android_us_12_hour_with_narrow_space(tmp_path):
    chat = write(
        tmp_path / "WhatsApp Chat with Bob Roe.txt",
        [
            f"1/13/24, 9:41{NNBSP}PM - Messages and calls are end-to-end encrypted. No one outside"
            " of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.",
            f"1/13/24, 9:41{NNBSP}PM - Bob Roe: hey there",
            "second line of the same message",
            "",
            "third after a blank line",
            f"1/13/24, 9:42{NNBSP}PM - Ann Lee: <Media omitted>",
            f"1/13/24, 9:43{NNBSP}PM - Ann Lee: hi Bob <This message was edited>",
            f"1/13/24, 12:05{NNBSP}AM - Bob Roe: This message was deleted",
            f"1/14/24, 12:15{NNBSP}AM - Ann Lee: late night",
            f"1/14/24, 12:16{NNBSP}PM - Bob Roe: location: https://maps.google.com/?q=1,2",
        ],
    )
    stats, rows = records(tmp_path, chat)
    assert stats["format"] == "whatsapp-android"
    assert [r.text for r in rows] == [
        "hey there\nsecond line of the same message\n\nthird after a blank line",
        "hi Bob",
        "late night",
    ]
    assert rows[0].time == iso(2024, 1, 13, 21, 41)
    assert rows[2].time == iso(2024, 1, 14, 0, 15)
    assert rows[0].thread == "whatsapp:Bob Roe"
    assert stats["skipped"]["system"] == 1
    assert stats["skipped"]["media"] == 2
    assert stats["skipped"]["deleted"] == 1


def test_ios_day_first_with_marks_tilde_names_and_crlf(tmp_path):
    lines = [
        f"[31.12.23, 21:41:07] Team: {LRM}Messages and calls are end-to-end encrypted.",
        f"{LRM}[31.12.23, 21:41:09] Team: {LRM}Ann Lee added ~{NNBSP}Cat",
        f"[31.12.23, 21:42:00] ~{NNBSP}Cat: hello all",
        f"{LRM}[31.12.23, 21:42:05] Ann Lee: {LRM}image omitted",
        f"{LRM}[31.12.23, 21:42:06] Ann Lee: {LRM}<attached: 00000003-PHOTO-2023-12-31.jpg>",
        f"[31.12.23, 21:43:00] Ann Lee: hi Cat {LRM}<This message was edited>",
        f"{LRM}[31.12.23, 21:44:00] ~{NNBSP}Cat: {LRM}sticker omitted",
        f"{LRM}[31.12.23, 21:44:10] Ann Lee: {LRM}Missed voice call",
        f"{LRM}[31.12.23, 21:44:30] ~{NNBSP}Cat: {LRM}You deleted this message.",
        f"[1.1.24, 09:00:00] ~{NNBSP}Cat: happy new year{NBSP}!",
    ]
    archive = tmp_path / "WhatsApp Chat - Team.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("_chat.txt", "\r\n".join(lines) + "\r\n")
        zf.writestr("00000003-PHOTO-2023-12-31.jpg", b"jpeg")
    stats, rows = records(tmp_path, archive)
    assert stats["format"] == "whatsapp-ios"
    assert [(r.sender, r.text) for r in rows] == [
        ("Cat", "hello all"),
        ("Ann Lee", "hi Cat"),
        ("Cat", "happy new year !"),
    ]
    assert rows[-1].time == iso(2024, 1, 1, 9, 0, 0)
    assert rows[-1].conversation == 1 and rows[-1].turn == 0
    assert rows[0].thread == "whatsapp:Team"
    assert {k: v for k, v in stats["skipped"].items() if v} == {
        "system": 2,
        "media": 2,
        "sticker": 1,
        "call": 1,
        "deleted": 1,
    }


@pytest.mark.parametrize(
    ("dates", "expected_first"),
    [
        # A day above 12 settles it: day first ...
        (["13/01/2024", "14/01/2024"], (2024, 1, 13)),
        # ... or month first.
        (["01/13/2024", "01/14/2024"], (2024, 1, 13)),
        # All values ambiguous: the order that keeps the file chronological wins.
        (["05/01/2024", "06/01/2024", "01/02/2024"], (2024, 1, 5)),
        (["01/05/2024", "01/06/2024", "02/01/2024"], (2024, 1, 5)),
        # Year first (some Asian locales).
        (["2024/01/05", "2024/01/06"], (2024, 1, 5)),
        # Dots are day-first.
        (["05.01.24", "05.01.24"], (2024, 1, 5)),
    ],
)
def test_date_order_is_inferred_per_file(tmp_path, dates, expected_first):
    lines = [
        f"{date}, 10:00 - {'Ann Lee' if i % 2 else 'Bob Roe'}: msg {i}"
        for i, date in enumerate(dates)
    ]
    _, rows = records(tmp_path, write(tmp_path / "chat.txt", lines))
    assert rows[0].time == iso(*expected_first, 10, 0)


def test_two_files_with_different_orders_in_one_import(tmp_path):
    us = write(
        tmp_path / "WhatsApp Chat with Bob.txt",
        ["3/25/24, 8:00 AM - Bob: morning", "3/25/24, 8:01 AM - Ann Lee: hi"],
    )
    eu = write(
        tmp_path / "WhatsApp Chat with Cat.txt",
        ["25/03/2024, 20:00 - Cat: evening", "25/03/2024, 20:01 - Ann Lee: yo"],
    )
    stats, rows = records(tmp_path, us, eu, me=None)
    assert stats["persona"] == "Ann Lee"  # the one participant of every chat
    assert {r.time for r in rows} >= {iso(2024, 3, 25, 8, 0), iso(2024, 3, 25, 20, 0)}


@pytest.mark.parametrize("ampm", ["p. m.", "p.m.", "pm", f"p.{NBSP}m."])
def test_localized_ampm(tmp_path, ampm):
    chat = write(
        tmp_path / "chat.txt",
        [f"20/6/2017 8:28 {ampm} - Ann Lee: prueba", f"20/6/2017 8:29 {ampm} - Bob: ok"],
    )
    _, rows = records(tmp_path, chat)
    assert rows[0].time == iso(2017, 6, 20, 20, 28)


def test_german_localized_lines_bom_and_utf16(tmp_path):
    lines = [
        "03.08.21, 12:30 - Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt.",
        "03.08.21, 12:30 - Bob: <Medien ausgeschlossen>",
        "03.08.21, 12:31 - Bob: Diese Nachricht wurde gelöscht",
        "03.08.21, 12:32 - Ann Lee: Grüß dich <Diese Nachricht wurde bearbeitet>",
        "03.08.21, 12:33 - Bob: Servus",
    ]
    utf8 = write(tmp_path / "a.txt", lines, bom=True)
    stats, rows = records(tmp_path, utf8)
    assert [r.text for r in rows] == ["Grüß dich", "Servus"]
    assert stats["skipped"]["system"] == 1 and stats["skipped"]["media"] == 1
    utf16 = write(tmp_path / "b.txt", lines, encoding="utf-16")
    _, rows16 = records(tmp_path, utf16)
    assert [r.text for r in rows16] == ["Grüß dich", "Servus"]


def test_group_notice_with_colon_is_not_a_message(tmp_path):
    chat = write(
        tmp_path / "chat.txt",
        [
            '12/01/2023, 10:00 - Bob changed the subject from "a" to "plans: summer"',
            "12/01/2023, 10:01 - Bob: real text: with a colon",
            "12/01/2023, 10:02 - Ann Lee: ok",
        ],
    )
    stats, rows = records(tmp_path, chat)
    assert [r.text for r in rows] == ["real text: with a colon", "ok"]
    assert stats["skipped"]["system"] == 1


def test_single_chat_is_ambiguous_without_me(tmp_path):
    chat = write(
        tmp_path / "chat.txt", ["12/01/2023, 10:00 - Bob: hi", "12/01/2023, 10:01 - Ann: yo"]
    )
    with pytest.raises(InputError, match="Ann, Bob are in every thread; pass --me NAME"):
        import_exports(chat, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_impossible_dates_are_an_error(tmp_path):
    chat = write(tmp_path / "chat.txt", ["31/31/2023, 10:00 - Bob: hi"])
    with pytest.raises(InputError, match="chat.txt: cannot read dates like '31/31/2023'"):
        import_exports(chat, tmp_path / "out.jsonl", me="Bob")


def test_nobody_in_every_chat_lists_the_most_frequent(tmp_path):
    one = write(tmp_path / "a.txt", ["12/01/2023, 10:00 - Bob: hi", "12/01/2023, 10:01 - Ann: yo"])
    two = write(tmp_path / "b.txt", ["12/01/2023, 10:00 - Cat: hi", "12/01/2023, 10:01 - Dan: yo"])
    three = write(
        tmp_path / "c.txt", ["12/01/2023, 11:00 - Cat: hi", "12/01/2023, 11:01 - Eve: yo"]
    )
    with pytest.raises(
        InputError,
        match=r"nobody is in every thread; pass --me NAME \(most frequent:"
        r" Cat \(2 threads\), ",
    ):
        import_exports([one, two, three], tmp_path / "out.jsonl")


def test_progress_callback_counts_threads(tmp_path):
    paths = [
        write(
            tmp_path / f"{name}.txt",
            [f"12/01/2023, 10:00 - {name}: hi", "12/01/2023, 10:01 - Ann Lee: yo"],
        )
        for name in ("Bob", "Cat", "Dan")
    ]
    calls = []
    import_exports(
        paths, tmp_path / "out.jsonl", progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_unzipped_ios_exports_take_their_folder_names(tmp_path):
    for name in ("Bob", "Cat"):
        folder = tmp_path / f"WhatsApp Chat - {name}"
        folder.mkdir()
        write(
            folder / "_chat.txt",
            [f"[12.01.23, 10:00:00] {name}: hi", "[12.01.23, 10:00:05] Ann Lee: yo"],
        )
    stats, rows = records(tmp_path, tmp_path, me=None)
    assert stats["persona"] == "Ann Lee"
    assert sorted({r.thread for r in rows}) == ["whatsapp:Bob", "whatsapp:Cat"]

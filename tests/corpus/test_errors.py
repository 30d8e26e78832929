"""Bad input: one clear error naming the file, nothing written, nothing outside the output."""

from __future__ import annotations

import zipfile

import pytest

from mimical.corpus import sources
from mimical.corpus.importer import import_exports
from mimical.errors import InputError, TooLargeError, UnsupportedFormatError

WHATSAPP = "12/01/2023, 10:00 - Bob: hi\n12/01/2023, 10:01 - Ann: yo\n"


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match=f"^{tmp_path}/nope.zip: no such file or directory$"):
        import_exports(tmp_path / "nope.zip", tmp_path / "out.jsonl")


def test_unknown_format(tmp_path):
    (tmp_path / "notes.txt").write_text("just some notes\nnothing else\n")
    (tmp_path / "data.json").write_text('{"hello": "world"}')
    with pytest.raises(
        UnsupportedFormatError, match="not a Messenger, WhatsApp or Telegram export"
    ):
        import_exports(tmp_path, tmp_path / "out.jsonl")


@pytest.mark.parametrize("member", ["messages/inbox/sam_1/message_1.html", "chat/messages2.html"])
def test_html_export_asks_for_json(tmp_path, member):
    (tmp_path / member).parent.mkdir(parents=True)
    (tmp_path / member).write_text("<html></html>")
    with pytest.raises(UnsupportedFormatError, match="this export is HTML; download it again"):
        import_exports(tmp_path, tmp_path / "out.jsonl")


def test_unknown_format_name(tmp_path):
    (tmp_path / "chat.txt").write_text(WHATSAPP)
    with pytest.raises(UnsupportedFormatError, match="unknown format 'signal'"):
        import_exports(tmp_path, tmp_path / "out.jsonl", format="signal")


def test_format_override_that_finds_nothing(tmp_path):
    (tmp_path / "chat.txt").write_text(WHATSAPP)
    with pytest.raises(UnsupportedFormatError, match="not a telegram export"):
        import_exports(tmp_path, tmp_path / "out.jsonl", format="telegram")


def test_corrupt_zip(tmp_path):
    (tmp_path / "export.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(InputError, match="export.zip: not a readable zip file"):
        import_exports(tmp_path / "export.zip", tmp_path / "out.jsonl")


@pytest.mark.parametrize(
    "name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "C:/evil.txt"]
)
def test_unsafe_member_names(tmp_path, name):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("chat.txt", WHATSAPP)
        zf.writestr(zipfile.ZipInfo(name), WHATSAPP)
    with pytest.raises(InputError, match="export.zip: unsafe member name"):
        import_exports(archive, tmp_path / "out.jsonl", me="Ann")
    assert not (tmp_path / "evil.txt").exists()


def test_zip_bomb_ratio(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("chat.txt", b"\0" * (8 * 1024 * 1024))
    with pytest.raises(TooLargeError, match="bomb.zip: member 'chat.txt' expands"):
        import_exports(archive, tmp_path / "out.jsonl")


def test_zip_total_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_UNCOMPRESSED_BYTES", 1000)
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for index in range(30):
            zf.writestr(f"chat{index}.txt", WHATSAPP)
    with pytest.raises(TooLargeError, match="big.zip: uncompressed size exceeds 1000 bytes"):
        import_exports(archive, tmp_path / "out.jsonl")


def test_nested_zip_is_checked_too(tmp_path):
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("../escape.txt", WHATSAPP)
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "chats/inner.zip")
    with pytest.raises(InputError, match="outer.zip:chats/inner.zip: unsafe member name"):
        import_exports(outer, tmp_path / "out.jsonl")


def test_export_without_text(tmp_path):
    (tmp_path / "chat.txt").write_text(
        "12/01/2023, 10:00 - Bob: <Media omitted>\n12/01/2023, 10:01 - Ann: <Media omitted>\n"
    )
    with pytest.raises(InputError, match="no text messages found \\(2 media\\)"):
        import_exports(tmp_path, tmp_path / "out.jsonl", me="Ann")


def test_me_who_never_wrote(tmp_path):
    (tmp_path / "chat.txt").write_text(WHATSAPP)
    with pytest.raises(
        InputError,
        match="Zed wrote none of the messages; pass --me with one of: Ann, Bob$",
    ):
        import_exports(tmp_path, tmp_path / "out.jsonl", me="Zed")


def test_failed_import_keeps_the_previous_corpus(tmp_path):
    out = tmp_path / "corpus.jsonl"
    out.write_text("previous corpus\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in/result.json").write_text('{"chats": {"list": [{"type": "personal_chat", "mess')
    with pytest.raises(InputError, match="corrupt JSON"):
        import_exports(tmp_path / "in", out)
    assert out.read_text() == "previous corpus\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "in"]


@pytest.mark.parametrize(
    ("member", "content"),
    [
        ("messages/inbox/sam_1/message_1.json", '{"participants": [], "messages": [1, 2]}'),
        ("messages/inbox/sam_1/message_1.json", '{"participants": [], "messages": {"a": 1}}'),
        ("result.json", '{"chats": {"list": [{"type": "personal_chat", "messages": [7]}]}}'),
        ("e2ee.json", '{"participants": ["a"], "threadName": "a", "messages": ["senderName"]}'),
    ],
)
def test_unexpected_structure_names_the_file(tmp_path, member, content):
    (tmp_path / member).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / member).write_text(content)
    with pytest.raises(InputError, match=f"{tmp_path / member}: (no 'messages' list|unexpected)"):
        import_exports(tmp_path, tmp_path / "out.jsonl", me="a")


def test_unwritable_output(tmp_path):
    (tmp_path / "chat.txt").write_text(WHATSAPP)
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="taken"):
        import_exports(tmp_path / "chat.txt", tmp_path / "taken", me="Ann")


def test_corrupt_member_data(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("WhatsApp Chat with Bob.txt", WHATSAPP * 50)
    data = bytearray(archive.read_bytes())
    data[60:90] = b"\x00" * 30  # inside the compressed stream of the only member
    archive.write_bytes(bytes(data))
    with pytest.raises(InputError, match="export.zip"):
        import_exports(archive, tmp_path / "out.jsonl", me="Ann")


def test_zip_bomb_of_many_small_members(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for index in range(40):
            zf.writestr(f"part{index}.txt", b"\0" * (256 * 1024))
    with pytest.raises(TooLargeError, match="bomb.zip: expands"):
        import_exports(archive, tmp_path / "out.jsonl")

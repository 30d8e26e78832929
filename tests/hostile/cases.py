"""The hostile-input corpus: every attack and careless input we defend against, made in code.

Each case is generated on demand (nothing large is checked in) and used by the API
tests (`tests/api/test_uploads.py`, `tests/api/test_limits.py`), the import tests
(`tests/corpus/test_hostile.py`) and the memory-capped fuzz test
(`tests/hostile/test_fuzz.py`). `UPLOADS` maps a case name to the file a client
sends and the answer it must get; `IMPORT_ERRORS` are the ones `mimical import`
must refuse with an `InputError` naming the file.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

# Big enough that the old quadratic upload check took ~24 GB (the reproduction).
DEEP_NESTING = 100_000
MESSENGER_MEMBER = "messages/inbox/ann_1/message_1.json"


def deep_nesting(depth: int = DEEP_NESTING) -> bytes:
    """`[` x depth then `]` x depth: valid JSON, 200 KB, nested 100,000 levels deep."""
    return b"[" * depth + b"]" * depth


def deep_telegram(depth: int = DEEP_NESTING) -> bytes:
    """A Telegram full export whose chat list nests `depth` levels deep."""
    return b'{"personal_information": {}, "chats": {"list": ' + deep_nesting(depth) + b"}}"


def messenger_page(count: int = 30) -> bytes:
    """A valid Messenger DYI thread page (Ann and Bob talking)."""
    messages = [
        {
            "sender_name": "Ann" if i % 2 else "Bob",
            "timestamp_ms": 1_700_000_000_000 + i * 60_000,
            "content": f"message number {i} about the weather",
        }
        for i in range(count)
    ]
    page = {
        "participants": [{"name": "Ann"}, {"name": "Bob"}],
        "messages": messages[::-1],
        "title": "Bob",
        "thread_path": "inbox/ann_1",
    }
    return json.dumps(page).encode()


def telegram_export(date_unixtime: str = "1706781600") -> bytes:
    """A single-chat Telegram result.json; one message carries `date_unixtime`."""
    messages = [
        {
            "id": i,
            "type": "message",
            "date": "2024-02-01T10:00:00",
            "date_unixtime": str(1706781600 + i * 60),
            "from": "Ann" if i % 2 else "Bob",
            "from_id": f"user{i % 2}",
            "text": f"message number {i} about the weather",
        }
        for i in range(30)
    ]
    messages[5]["date_unixtime"] = date_unixtime
    return json.dumps(
        {"name": "Bob", "type": "personal_chat", "id": 42, "messages": messages}
    ).encode()


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _damage_member_data(compression: int) -> bytes:
    """A one-member zip whose member data has bytes changed after it was written."""
    data = messenger_page()
    archive = bytearray(zip_bytes({MESSENGER_MEMBER: data}, compression))
    # Local header: 30 bytes + name; the member's data follows.
    start = 30 + len(MESSENGER_MEMBER)
    middle = start + 40
    archive[middle : middle + 8] = b"\xff" * 8 if compression else b"XXXXXXXX"
    return bytes(archive)


def crc_failing_zip() -> bytes:
    """A stored (uncompressed) member whose bytes no longer match its CRC-32."""
    return _damage_member_data(zipfile.ZIP_STORED)


def corrupt_deflate_zip() -> bytes:
    """A deflated member whose compressed stream is damaged (zlib.error on reading)."""
    return _damage_member_data(zipfile.ZIP_DEFLATED)


def zip_bomb() -> bytes:
    """20 MB of zeros deflated to ~20 kB: far past the importer's ratio limit."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(MESSENGER_MEMBER, "w") as member,
    ):
        for _ in range(20):
            member.write(b"\0" * 1024 * 1024)
    return buffer.getvalue()


TRUNCATED_MESSENGER = (
    b'{"participants": [{"name": "A"}, {"name": "B"}], "messages": '
    b'[{"sender_name": "A", "timestamp_ms": 1, "content": "hi"}'
)
LONG_FILENAME = "a" * 295 + ".json"  # 300 characters: past every file system's name limit
NON_UTF8_WHATSAPP = "12/01/2024, 10:00 - Zoé: déjà vu\n".encode("latin-1") * 50


@dataclass(frozen=True)
class Upload:
    """A file a client uploads and the HTTP answer it must get."""

    filename: str
    make: Callable[[], bytes]
    status: int
    words: str  # in the error message (case-insensitive)
    # False for cases only the HTTP layer refuses (sizes), not the importer itself.
    import_refuses: bool = True


UPLOADS = {
    "empty": Upload("export.zip", lambda: b"", 422, "empty"),
    "zip bomb": Upload("export.zip", zip_bomb, 413, "zip bomb"),
    "dot-dot member": Upload(
        "export.zip",
        lambda: zip_bytes({"../../etc/cron.d/evil.json": b"{}"}),
        422,
        "unsafe member",
    ),
    "absolute member": Upload(
        "export.zip", lambda: zip_bytes({"/etc/passwd.json": b"{}"}), 422, "unsafe member"
    ),
    "truncated JSON in zip": Upload(
        "export.zip",
        lambda: zip_bytes({MESSENGER_MEMBER: TRUNCATED_MESSENGER}),
        422,
        "invalid JSON",
    ),
    "truncated JSON file": Upload("result.json", lambda: TRUNCATED_MESSENGER, 422, "invalid"),
    "deeply nested JSON file": Upload("result.json", deep_nesting, 422, "nested deeper"),
    "deeply nested JSON in zip": Upload(
        "export.zip", lambda: zip_bytes({MESSENGER_MEMBER: deep_nesting()}), 422, "nested deeper"
    ),
    "deeply nested Telegram chat list": Upload("result.json", deep_telegram, 422, "nested deeper"),
    "zip member failing its CRC": Upload("export.zip", crc_failing_zip, 422, "corrupt zip member"),
    "corrupt compressed zip member": Upload(
        "export.zip", corrupt_deflate_zip, 422, "corrupt zip member"
    ),
    "non-UTF-8 text": Upload(
        "chat.txt", lambda: NON_UTF8_WHATSAPP, 422, "not UTF-8", import_refuses=False
    ),
    "truncated zip": Upload(
        "export.zip", lambda: zip_bytes({"a.json": b"{}" * 999})[:60], 422, "zip"
    ),
    "binary junk": Upload(
        "photo.png", lambda: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" * 20, 415, "not a chat"
    ),
    "zip of photos": Upload(
        "export.zip", lambda: zip_bytes({"photos/1.jpg": b"\xff\xd8\xff\0" * 10}), 415, ""
    ),
    "JSON that is no export": Upload("data.json", lambda: b'{"hello": "world"}', 415, "not a"),
}

# Exports that pass the upload check (they are well-formed JSON) but that the import,
# which runs in the build, must refuse: the build ends Failed with this message.
BUILD_FAILURES = {
    "Telegram date_unixtime 1e400": (telegram_export("1e400"), "date_unixtime '1e400'"),
    "Telegram date_unixtime nan": (telegram_export("nan"), "date_unixtime 'nan'"),
}

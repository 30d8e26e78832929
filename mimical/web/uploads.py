"""Receive an uploaded export safely: to a temp file, checked, then into storage.

The API must refuse a bad upload *before* answering 202, with nothing stored, so
these checks run in the request; they stream and never hold a whole file in
memory:

- size: Flask's `MAX_CONTENT_LENGTH` (413) stops the body; the file part is spooled
  to disk once as it arrives (`UploadRequest`), then hard-linked, never copied;
- concurrency: `UploadSlots` lets this process receive only a few uploads at once
  (429 past that), so uploads cannot fill the pod's scratch volume;
- empty files (422), unreadable zips (422), unsafe member names (422) and zip
  bombs (413) — the zip checks are the importer's own (`mimical.corpus.sources`);
- content sniffing (415): a zip, a JSON document or UTF-8 text, else not an export;
- every JSON member must parse to the end (422 for truncated JSON; ijson streams
  it, and nesting past `MAX_JSON_DEPTH` is refused, so memory stays bounded) and
  every text member must be UTF-8 (422); a zip member failing its CRC or not
  decompressing is a 422 naming it;
- the file name is made safe and shortened to `FILENAME_MAX_CHARS`.

The full import (threads, senders, scrubbing) runs later in the build; its
errors mark the chatbot Failed.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from flask import Request
from werkzeug.datastructures import FileStorage as UploadedFile
from werkzeug.utils import secure_filename

from mimical.errors import InputError, RateLimitedError, TooLargeError, UnsupportedFormatError
from mimical.storage import Storage, upload_key

CHUNK_BYTES = 1024 * 1024
EXPORT_SUFFIXES = (".json", ".txt")
JSON_STARTS = (b"{", b"[")
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# File systems allow 255 bytes per name; exports are named like "result.json".
FILENAME_MAX_CHARS = 100


class UploadRequest(Request):
    """A request whose file parts go straight to a named file on disk.

    werkzeug's default is an anonymous temp file, which `received_export` had to copy:
    a 512 MiB upload took 1 GiB of scratch space. A named one can be hard-linked.
    """

    def _get_file_stream(self, total_content_length, content_type, filename=None, **_):
        return tempfile.NamedTemporaryFile("wb+", prefix="mimical-upload-part-")


class UploadSlots:
    """Uploads this process receives at once: at most `total`, `per_client` from one address.

    Each upload takes up to `upload_max_bytes` of the pod's scratch volume until it is
    in storage; the chart sizes that volume for one upload per gunicorn worker.
    """

    def __init__(self, total: int, per_client: int):
        self.total, self.per_client = total, per_client
        self._lock = threading.Lock()
        self._busy: Counter[str] = Counter()
        # Told the number of slots taken after each change (the `/metrics` gauge).
        self.on_change: Callable[[int], None] = lambda in_use: None

    def acquire(self, client: str) -> None:
        """Take a slot for `client`, or raise `RateLimitedError` (429) if none is free."""
        with self._lock:
            if sum(self._busy.values()) >= self.total or self._busy[client] >= self.per_client:
                raise RateLimitedError("too many uploads at once; try again when one is done")
            self._busy[client] += 1
            self.on_change(sum(self._busy.values()))

    def release(self, client: str) -> None:
        with self._lock:
            self._busy[client] -= 1
            if self._busy[client] <= 0:
                del self._busy[client]
            self.on_change(sum(self._busy.values()))


def _chunks(stream, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def _check_text(stream, where: str) -> None:
    first = stream.read(CHUNK_BYTES)
    if first.startswith(UTF16_BOMS):
        decoder = codecs.getincrementaldecoder("utf-16")()
    else:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        decoder.decode(first)
        for chunk in _chunks(stream):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text (export the chat again as UTF-8)") from None


def _sniff(head: bytes) -> str | None:
    """'json', 'text' or None (not an export) from a file's first bytes."""
    if head.startswith(UTF16_BOMS):
        return "text"
    stripped = head.removeprefix(UTF8_BOM).lstrip()
    if stripped.startswith(JSON_STARTS):
        return "json"
    if b"\0" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the end of the sample is still text.
        if error.start < len(head) - 4:
            return "text-invalid"
    return "text"


def check_export(path: Path, label: str) -> None:
    """Raise the right `InputError` if `path` cannot be a chat export; stream only.

    Messages name the upload as `label`, never our temporary path.
    """
    try:
        _check_export(path, label)
    except InputError as error:
        raise type(error)(str(error).replace(str(path), label)) from None


def _check_export(path: Path, label: str) -> None:
    from mimical.corpus.importer import detect
    from mimical.corpus.sources import FileSource, check_json, open_sources

    if path.stat().st_size == 0:
        raise InputError(f"{label}: the file is empty")
    opened = open_sources([path])  # refuses unsafe member names and zip bombs
    try:
        for source in opened.sources:
            for member in source.members():
                single = isinstance(source, FileSource)
                suffix = PurePosixPath(member).suffix.lower()
                if not single and suffix not in EXPORT_SUFFIXES:
                    continue  # photos, HTML, nested zips (opened as their own sources)
                where = label if single else f"{label}:{member}"
                with source.open(member) as stream:
                    kind = _sniff(stream.read(4096))
                if kind is None:
                    raise UnsupportedFormatError(
                        f"{where}: not a chat export (send the Messenger, WhatsApp or "
                        "Telegram export: a .zip, .json or .txt file)"
                    )
                with source.open(member) as stream:
                    if kind == "json":
                        check_json(stream, where)
                    else:
                        _check_text(stream, where)
        detect(opened.sources, None, [label])  # 415 unless some reader recognises it
    finally:
        opened.close()


def _short_name(filename: str) -> str:
    """`filename` cut to `FILENAME_MAX_CHARS`, keeping its extension (readers sniff it)."""
    if len(filename) <= FILENAME_MAX_CHARS:
        return filename
    suffix = PurePosixPath(filename).suffix[:16]
    return filename[: FILENAME_MAX_CHARS - len(suffix)] + suffix


@contextlib.contextmanager
def received_export(upload: UploadedFile | None):
    """Save an uploaded file to a private temp dir and check it; yield its path.

    The temp dir is removed afterwards whatever happens.
    """
    if upload is None or not upload.filename:
        raise InputError("missing the 'export' file field (multipart/form-data)")
    filename = _short_name(secure_filename(upload.filename) or "export")
    scratch = Path(tempfile.mkdtemp(prefix="mimical-upload-"))
    try:
        path = scratch / filename
        _save(upload, path)
        check_export(path, filename)
        yield path
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _save(upload: UploadedFile, path: Path) -> None:
    """Give the spooled part (`UploadRequest`) a second name; copy only if that fails."""
    spooled = getattr(upload.stream, "name", None)
    if isinstance(spooled, str) and os.path.isfile(spooled):
        upload.stream.flush()
        with contextlib.suppress(OSError):  # e.g. another file system: copy below
            os.link(spooled, path)
            return
    upload.stream.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(upload.stream, out, CHUNK_BYTES)


def store_upload(storage: Storage, name: str, path: Path, max_bytes: int) -> str:
    """Put a checked export into storage; return its key."""
    key = upload_key(name, uuid.uuid4().hex, path.name)
    if path.stat().st_size > max_bytes:
        raise TooLargeError(f"{path.name}: larger than the {max_bytes} byte upload limit")
    with path.open("rb") as stream:
        storage.put_stream(key, stream, max_bytes=max_bytes)
    return key

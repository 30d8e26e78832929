"""Receive an uploaded export safely: to a temp file, checked, then into storage.

The API must refuse a bad upload *before* answering 202, with nothing stored, so
these checks run in the request; they stream and never hold a whole file in
memory:

- size: Flask's `MAX_CONTENT_LENGTH` (413) stops the body; werkzeug spools the
  file part to disk as it arrives;
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
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from werkzeug.datastructures import FileStorage as UploadedFile
from werkzeug.utils import secure_filename

from mimical.errors import InputError, TooLargeError, UnsupportedFormatError
from mimical.storage import Storage, upload_key

CHUNK_BYTES = 1024 * 1024
EXPORT_SUFFIXES = (".json", ".txt")
JSON_STARTS = (b"{", b"[")
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# File systems allow 255 bytes per name; exports are named like "result.json".
FILENAME_MAX_CHARS = 100


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
        with path.open("wb") as out:
            shutil.copyfileobj(upload.stream, out, CHUNK_BYTES)
        check_export(path, filename)
        yield path
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def store_upload(storage: Storage, name: str, path: Path, max_bytes: int) -> str:
    """Put a checked export into storage; return its key."""
    key = upload_key(name, uuid.uuid4().hex, path.name)
    if path.stat().st_size > max_bytes:
        raise TooLargeError(f"{path.name}: larger than the {max_bytes} byte upload limit")
    with path.open("rb") as stream:
        storage.put_stream(key, stream, max_bytes=max_bytes)
    return key

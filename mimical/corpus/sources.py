"""Open what the user hands us — a folder, a .zip, or one file — as a read-only tree of files.

Exports arrive as the service hands them out: Facebook's multi-part zips, WhatsApp's
"Export chat" .zip (or a folder full of them), Telegram's `result.json`. Readers see a
`Source`: a list of member paths (POSIX, relative) and a way to open each one.

Zips are never extracted. Before any member is read, the archive is checked for unsafe
member names (absolute paths, `..`, drive letters) and for zip bombs: a limit on the total
uncompressed size and on each member's compression ratio. `zipfile` itself never returns
more bytes than a member's declared size, so checking the declared sizes is enough. A
member that fails its CRC or does not decompress is an `InputError` naming it, whenever
it is read.

JSON streamed with ijson goes through `json_events`, which refuses nesting deeper than
`MAX_JSON_DEPTH`: ijson's prefixed events grow with the depth, so `[` x 100,000 would
otherwise take memory quadratic in it (orjson, used for whole files, stops at 1024 levels).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mimical.errors import InputError, TooLargeError

# An export this large (uncompressed) is refused: the biggest real Messenger exports we
# have heard of are a few GiB of JSON. One budget for an import: zips nested in a zip (or
# side by side in a folder) share it, so nesting cannot multiply it.
MAX_UNCOMPRESSED_BYTES = 8 * 1024**3
# JSON and chat text compress 5-20x; a member compressed more than this is a zip bomb.
MAX_COMPRESSION_RATIO = 200
# Members smaller than this are not ratio-checked (tiny files have meaningless ratios).
RATIO_CHECK_MIN_BYTES = 1024 * 1024
# Real exports nest a few levels (Telegram's text entities: 6); this much is hostile.
MAX_JSON_DEPTH = 64
# What reading a damaged zip member raises: a failed CRC, a corrupt deflate stream, a
# member cut short, a header zipfile cannot follow.
ZIP_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, zipfile.LargeZipFile)


class Source:
    """A tree of files inside one input path."""

    #: What the user gave us (used in error messages).
    label: str

    def members(self) -> list[str]:
        raise NotImplementedError

    def open(self, member: str) -> BinaryIO:
        raise NotImplementedError

    def where(self, member: str) -> str:
        """A human name for one member, e.g. `export.zip:inbox/a/message_1.json`."""
        return f"{self.label}:{member}" if member else self.label

    def read(self, member: str) -> bytes:
        with self.open(member) as handle:
            return handle.read()

    def close(self) -> None:
        pass

    def reopen(self) -> None:
        """Open own handles after a fork: a zip file's read offset would be shared."""


class DirectorySource(Source):
    def __init__(self, root: Path):
        self.root = root
        self.label = str(root)
        self._members = sorted(
            path.relative_to(root).as_posix()
            for path in root.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )

    def members(self) -> list[str]:
        return self._members

    def open(self, member: str) -> BinaryIO:
        return (self.root / member).open("rb")

    def where(self, member: str) -> str:
        return str(self.root / member)


class FileSource(Source):
    """A single file given directly (a WhatsApp .txt, a Telegram result.json, ...)."""

    def __init__(self, path: Path):
        self.path = path
        self.label = str(path)

    def members(self) -> list[str]:
        return [self.path.name]

    def open(self, member: str) -> BinaryIO:
        return self.path.open("rb")

    def where(self, member: str) -> str:
        return self.label


class ZipSource(Source):
    def __init__(self, file: str | Path | BinaryIO, label: str, budget: int | None = None):
        """Open and check a zip whose members may expand to at most `budget` bytes."""
        self.label = label
        try:
            self.archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise InputError(f"{label}: not a readable zip file ({error})") from None
        self._members = check_zip(self.archive, label, budget)
        self.uncompressed_bytes = sum(info.file_size for info in self.archive.infolist())

    def members(self) -> list[str]:
        return self._members

    def open(self, member: str) -> BinaryIO:
        try:
            stream = self.archive.open(member)
        except ZIP_MEMBER_ERRORS as error:
            raise self._corrupt(member, error) from None
        return io.BufferedReader(_CheckedMember(stream, lambda error: self._corrupt(member, error)))

    def read(self, member: str) -> bytes:
        try:
            return self.archive.read(member)
        except ZIP_MEMBER_ERRORS as error:
            raise self._corrupt(member, error) from None

    def _corrupt(self, member: str, error: BaseException) -> InputError:
        return InputError(f"{self.where(member)}: corrupt zip member ({error})")

    def close(self) -> None:
        self.archive.close()

    def reopen(self) -> None:
        self.archive = zipfile.ZipFile(self.archive.filename)


class _CheckedMember(io.RawIOBase):
    """A zip member stream whose read errors become the `InputError` naming the member."""

    def __init__(self, stream: BinaryIO, corrupt):
        self._stream = stream
        self._corrupt = corrupt

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            return self._stream.readinto(buffer)
        except ZIP_MEMBER_ERRORS as error:
            raise self._corrupt(error) from None

    def close(self) -> None:
        self._stream.close()
        super().close()


def json_events(handle: BinaryIO, where: str) -> Iterator[tuple]:
    """ijson's prefixed events for a JSON stream, refusing nesting past `MAX_JSON_DEPTH`.

    Feed the result to `ijson.items(events, prefix)`. Raises `InputError` naming `where`
    for corrupt or too deeply nested JSON.
    """
    import ijson

    try:
        yield from ijson.parse(_bounded_depth(ijson.basic_parse(handle, use_float=True), where))
    except (ijson.JSONError, UnicodeDecodeError) as error:
        raise InputError(f"{where}: corrupt JSON ({_first_line(error)})") from None


def _bounded_depth(events: Iterable[tuple], where: str) -> Iterator[tuple]:
    depth = 0
    for event in events:
        kind = event[0]
        if kind == "start_map" or kind == "start_array":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InputError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif kind == "end_map" or kind == "end_array":
            depth -= 1
        yield event


def check_json(handle: BinaryIO, where: str) -> None:
    """Parse a JSON stream to its end in bounded memory; `InputError` if it is not valid."""
    import ijson

    try:
        for _ in _bounded_depth(ijson.basic_parse(handle, use_float=True), where):
            pass
    except (ijson.JSONError, UnicodeDecodeError) as error:
        raise InputError(f"{where}: truncated or invalid JSON ({_first_line(error)})") from None


def _first_line(error: Exception) -> str:
    detail = error.args[0] if error.args else type(error).__name__
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", errors="replace")
    return str(detail).splitlines()[0] if str(detail) else type(error).__name__


def check_zip(archive: zipfile.ZipFile, label: str, budget: int | None = None) -> list[str]:
    """Refuse unsafe names and zip bombs (members expanding past `budget` bytes in all,
    default `MAX_UNCOMPRESSED_BYTES`, or compressed too well); return the members' names."""
    budget = MAX_UNCOMPRESSED_BYTES if budget is None else budget
    total = compressed = 0
    names = []
    for info in archive.infolist():
        name = info.filename
        if unsafe_member_name(name):
            raise InputError(f"{label}: unsafe member name {name!r} in zip")
        total += info.file_size
        compressed += info.compress_size
        if total > budget:
            raise TooLargeError(
                f"{label}: uncompressed size exceeds {MAX_UNCOMPRESSED_BYTES} bytes"
                " with the archives around or beside it (zip bomb?)"
            )
        if _too_compressed(info.file_size, info.compress_size):
            ratio = info.file_size // max(info.compress_size, 1)
            raise TooLargeError(
                f"{label}: member {name!r} expands {ratio}x (limit {MAX_COMPRESSION_RATIO}x;"
                " zip bomb?)"
            )
        # macOS adds "__MACOSX/._name" resource forks to zips it makes; they are not ours.
        hidden = name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith(".")
        if not info.is_dir() and not hidden:
            names.append(name)
    if _too_compressed(total, compressed):  # many small members, each under the radar
        ratio = total // max(compressed, 1)
        raise TooLargeError(
            f"{label}: expands {ratio}x (limit {MAX_COMPRESSION_RATIO}x; zip bomb?)"
        )
    return sorted(names)


def _too_compressed(size: int, compressed: int) -> bool:
    return size >= RATIO_CHECK_MIN_BYTES and size > MAX_COMPRESSION_RATIO * max(compressed, 1)


def unsafe_member_name(name: str) -> bool:
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return True
    return ".." in PurePosixPath(normalized).parts


@dataclass
class OpenedSources:
    """All sources of one import, closed together (nested zips use temporary files)."""

    sources: list[Source]
    _temp_dir: str | None = None
    # What the zips opened so far left of the import's decompression budget.
    budget_left: int = field(default_factory=lambda: MAX_UNCOMPRESSED_BYTES)

    def add_zip(self, file: Path, label: str) -> ZipSource:
        """Open a zip against the budget that is left, and charge it what it expands to."""
        source = ZipSource(file, label, self.budget_left)
        self.budget_left -= source.uncompressed_bytes
        return source

    def close(self) -> None:
        for source in self.sources:
            source.close()
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


def open_sources(paths: list[str | os.PathLike]) -> OpenedSources:
    """One `Source` per input path, plus one per .zip found inside a folder or a zip.

    A folder of WhatsApp "Export chat" zips, or Facebook's multi-part download saved
    side by side, is therefore one import.
    """
    opened = OpenedSources([])
    try:
        for raw in paths:
            path = Path(raw).expanduser()
            if not path.exists():
                raise InputError(f"{path}: no such file or directory")
            if path.is_dir():
                source: Source = DirectorySource(path)
            elif zipfile.is_zipfile(path):
                source = opened.add_zip(path, str(path))
            elif path.suffix.lower() == ".zip":
                raise InputError(f"{path}: not a readable zip file")
            else:
                source = FileSource(path)
            opened.sources.append(source)
            opened.sources.extend(_nested_zips(source, opened))
    except BaseException:
        opened.close()
        raise
    return opened


def _nested_zips(source: Source, opened: OpenedSources) -> Iterator[Source]:
    for member in source.members():
        if not member.lower().endswith(".zip"):
            continue
        where = source.where(member)
        if isinstance(source, DirectorySource):
            yield opened.add_zip(source.root / member, where)
            continue
        if isinstance(source, FileSource):
            continue
        # A zip inside a zip: copy it to a temporary file (it was size-checked above).
        if opened._temp_dir is None:
            opened._temp_dir = tempfile.mkdtemp(prefix="mimical-import-")
        target = Path(opened._temp_dir) / f"{len(opened.sources)}.zip"
        with source.open(member) as inner, target.open("wb") as out:
            shutil.copyfileobj(inner, out)
        yield opened.add_zip(target, where)


def read_text(source: Source, member: str) -> str:
    """Decode a text export: UTF-8 (with or without BOM), or UTF-16 with a BOM."""
    data = source.read(member)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig", errors="replace")


def head(source: Source, member: str, size: int = 4096) -> bytes:
    """The first bytes of a member, to sniff its format without reading it all."""
    with source.open(member) as handle:
        return handle.read(size)


def unclaimed_members(
    sources: list[Source], claimed: set, suffix: str, sniff_size: int
) -> Iterator[tuple[Source, str, bytes]]:
    """Members ending in `suffix` that no earlier reader claimed, with their first bytes.

    Readers detect their files in turn and add what they take to `claimed`, so one
    file is never read as two formats.
    """
    for source in sources:
        for member in source.members():
            if member.lower().endswith(suffix) and (id(source), member) not in claimed:
                yield source, member, head(source, member, sniff_size)

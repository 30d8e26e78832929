"""Turn chat exports into one corpus file: detect, read, find the persona, segment, scrub.

    from mimical.corpus.importer import import_exports
    stats = import_exports(["facebook-me.zip"], "corpus.jsonl")

or `mimical import PATH... -o corpus.jsonl` (see `mimical.corpus.cli`). Threads are
read and written one at a time, so memory stays flat however large the export is; the
corpus appears atomically at the end, or not at all if the input is unusable.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypedDict

from mimical.corpus.facebook_export import MessengerE2EEReader, MessengerReader
from mimical.corpus.schema import write_lines
from mimical.corpus.scrub import KINDS
from mimical.corpus.segment import GAP_THRESHOLD_SECONDS, SegmentCounts
from mimical.corpus.sources import open_sources
from mimical.corpus.telegram_export import TelegramReader
from mimical.corpus.threads import SKIP_REASONS, clean_name
from mimical.corpus.whatsapp_export import WhatsAppReader
from mimical.corpus.workers import LineMaker, thread_lines
from mimical.errors import InputError, UnsupportedFormatError

# Detection order matters: each reader claims its files so later ones do not look at them.
READERS = {
    "messenger": MessengerReader,
    "messenger-e2ee": MessengerE2EEReader,
    "telegram": TelegramReader,
    "whatsapp": WhatsAppReader,
}
FORMAT_ALIASES = {
    "whatsapp-android": "whatsapp",
    "whatsapp-ios": "whatsapp",
    "facebook": "messenger",
}
FORMATS = tuple(READERS) + tuple(FORMAT_ALIASES)
# Facebook and Telegram also export HTML, which people download by mistake.
HTML_EXPORT = re.compile(r"(?:^|/)(?:message_\d+|messages\d*)\.html$")

Progress = bool | Callable[[int, int], None]


class ImportStats(TypedDict):
    format: str  # e.g. "messenger", "whatsapp-android+whatsapp-ios"
    persona: str
    output: str
    threads: int
    messages: int  # human text messages kept
    persona_messages: int
    conversations: int
    turns: int
    pairs: int
    persona_starts: int
    gap_seconds: float
    scrubbed: dict[str, int]  # by kind: email, phone, url, card, iban
    skipped: dict[str, int]  # by reason, see mimical.corpus.threads.SKIP_REASONS


def import_exports(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    output: str | os.PathLike,
    *,
    me: str | None = None,
    format: str | None = None,
    scrub: bool = True,
    progress: Progress = False,
    gap_seconds: float = GAP_THRESHOLD_SECONDS,
    workers: int = 1,
) -> ImportStats:
    """Import every export under `paths` into the corpus file `output`; return the stats.

    `progress` is True for a tqdm bar on stderr, or a callback `(threads_done, threads_total)`
    (the backend reports it as the import phase's progress); `threads_total` is None when
    it is not known up front (Telegram's chats are counted as they stream by).
    `workers`: processes that read Messenger DYI threads; 1 (the default) reads them in
    this process. More is opt-in and pays only for a large export on idle CPUs (see
    `mimical.corpus.workers`, which falls back to one process where it cannot fork). The
    output is the same either way.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise InputError("no export path given")
    output = Path(output)
    try:
        opened = open_sources(paths)
    except OSError as error:
        raise InputError(f"{error.filename or paths[0]}: {error.strerror or error}") from None
    try:
        readers = detect(opened.sources, format, paths)
        personas = find_persona(readers, me)
        make = LineMaker(personas, gap_seconds, scrub)
        skipped: Counter = Counter()
        counts = SegmentCounts()
        scrubbed: Counter = Counter({kind: 0 for kind in KINDS})
        participants: Counter = Counter()  # threads each person is in
        seen: set[str] = set()
        imported_threads: list[str] = []  # the ones with text
        total = sum(len(reader) for reader in readers)
        formats: set[str] = set()

        def lines() -> Iterator[bytes]:
            with _Progress(progress, total) as advance:
                for thread in thread_lines(readers, opened.sources, make, skipped, workers):
                    advance()
                    skipped.update(thread.skipped)
                    if thread.id in seen:
                        skipped["thread"] += 1
                        continue
                    seen.add(thread.id)
                    if not thread.lines:  # no text messages
                        continue
                    imported_threads.append(thread.id)
                    formats.add(thread.format)
                    participants.update(thread.participants)
                    counts.add(thread.counts)
                    scrubbed.update(thread.scrubbed)
                    yield thread.lines
                    del thread  # not kept alive while the next one is read
            # Still inside the write: raising here leaves no corpus file behind.
            _check_result(paths, counts, personas, participants, skipped)

        output.parent.mkdir(parents=True, exist_ok=True)
        with _no_cycle_collection():
            write_lines(lines(), output)
    except OSError as error:  # unreadable input, unwritable output, full disk
        raise InputError(f"{error.filename or output}: {error.strerror or error}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        where = ", ".join(str(path) for path in paths)
        raise InputError(f"{where}: corrupt zip data ({error})") from None
    finally:
        opened.close()
    return ImportStats(
        format="+".join(sorted(formats)),
        persona=sorted(personas)[0] if len(personas) == 1 else " / ".join(sorted(personas)),
        output=str(output),
        threads=len(imported_threads),
        messages=counts.messages,
        persona_messages=counts.persona_messages,
        conversations=counts.conversations,
        turns=counts.turns,
        pairs=counts.pairs,
        persona_starts=counts.persona_starts,
        gap_seconds=gap_seconds,
        scrubbed={kind: scrubbed[kind] for kind in KINDS},
        skipped={reason: skipped[reason] for reason in SKIP_REASONS},
    )


def detect(sources, format: str | None, paths: list) -> list:
    """The readers that find something in the sources (only `format`'s, if given)."""
    names = list(READERS)
    if format:
        name = FORMAT_ALIASES.get(format, format)
        if name not in READERS:
            raise UnsupportedFormatError(
                f"unknown format {format!r} (choose from {', '.join(FORMATS)})"
            )
        names = [name]
    claimed: set = set()
    readers = [r for n in names if (r := READERS[n].detect(sources, claimed)) is not None]
    if not readers:
        where = ", ".join(str(path) for path in paths)
        members = [member for source in sources for member in source.members()]
        if any(HTML_EXPORT.search(member) for member in members):
            raise UnsupportedFormatError(
                f"{where}: this export is HTML; download it again choosing the JSON format"
                " (Facebook: Format JSON; Telegram: Machine-readable JSON)"
            )
        wanted = f"a {format} export" if format else "a Messenger, WhatsApp or Telegram export"
        raise UnsupportedFormatError(f"{where}: not {wanted} (no chat files found)")
    return readers


def find_persona(readers: list, me: str | None) -> frozenset[str]:
    """The exporting user's name(s): `me`, else what the exports say, else who is everywhere."""
    if me:
        return frozenset({clean_name(me)})
    owners = [(reader, reader.owner()) for reader in readers]
    declared = {owner for _, owner in owners if owner}
    undeclared = [reader for reader, owner in owners if not owner]
    if not undeclared:
        return frozenset(declared)
    common: set[str] | None = None
    presence: Counter = Counter()
    for reader in undeclared:
        for participants in reader.participant_sets():
            if not participants:
                continue
            presence.update(participants)
            common = set(participants) if common is None else common & participants
    common = common or set()
    if declared & common or (declared and not common):
        return frozenset(declared)
    if len(common) == 1:
        return frozenset(declared | common)
    if common:
        names = ", ".join(sorted(common)[:20])
        raise InputError(
            f"cannot tell who exported this chat: {names} are in every thread; pass --me NAME"
        )
    ranked = sorted(presence.items(), key=lambda item: (-item[1], item[0]))
    frequent = ", ".join(f"{name} ({n} threads)" for name, n in ranked[:8])
    raise InputError(
        f"cannot tell who exported these chats: nobody is in every thread; pass --me NAME"
        f" (most frequent: {frequent or 'none'})"
    )


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector: reading makes millions of small dicts and lists (none
    in a cycle) and the collector would keep walking all that are alive (~15% of the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_result(paths, counts, personas, participants: Counter, skipped: Counter) -> None:
    where = ", ".join(str(path) for path in paths)
    if counts.messages == 0:
        left_out = ", ".join(f"{n} {reason}" for reason, n in skipped.most_common() if n)
        raise InputError(f"{where}: no text messages found ({left_out or 'export is empty'})")
    if counts.persona_messages == 0:
        ranked = sorted(participants.items(), key=lambda item: (-item[1], item[0]))
        frequent = ", ".join(name for name, _ in ranked[:8])
        raise InputError(
            f"{where}: {' / '.join(sorted(personas))} wrote none of the messages;"
            f" pass --me with one of: {frequent}"
        )


class _Progress:
    """Context manager yielding `advance()`: a tqdm bar, a callback, or nothing."""

    def __init__(self, progress: Progress, total: int):
        self.progress, self.total, self.done, self.bar = progress, total, 0, None

    def __enter__(self) -> Callable[[], None]:
        if self.progress is True:
            from tqdm import tqdm

            total = self.total or None  # unknown for Telegram, whose chats are streamed
            self.bar = tqdm(total=total, unit="thread", file=sys.stderr, leave=False)
        return self.advance

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        elif callable(self.progress):
            self.progress(self.done, self.total or None)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

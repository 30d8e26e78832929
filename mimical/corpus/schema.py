"""The corpus format: JSON Lines, one human text message per line.

Lines are grouped by thread and chronological within each thread. Fields:

- `thread`: stable id of the chat the message came from.
- `conversation`: 0-based index of the conversation within the thread; a new one
  starts after a long silence (see `mimical.corpus.segment`).
- `turn`: 0-based index of the turn within the conversation; consecutive messages
  from one sender share a turn.
- `sender`: display name; `persona`: true when the exporting user wrote it.
- `time`: ISO 8601 UTC timestamp; `text`: the (scrubbed) message text.
- `starts`: true on the persona's messages when its turn opens a conversation.

Training reads (context → reply) pairs built from those records by `training_pairs`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from mimical.errors import InputError

# How many turns before a persona reply the model sees as context.
DEFAULT_CONTEXT_TURNS = 3


@dataclass(frozen=True, slots=True)
class CorpusMessage:
    thread: str
    conversation: int
    turn: int
    sender: str
    persona: bool
    time: str
    text: str
    starts: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson serializes dataclasses natively, ~10x asdict


@dataclass(frozen=True, slots=True)
class Pair:
    """One training example: what others said (possibly empty) → the persona's turn."""

    thread: str
    conversation: int
    context: str  # earlier turns, oldest first, joined by newlines; "" for openers
    reply: str  # the persona's whole turn, its messages joined by newlines
    starts: bool  # the reply opens the conversation


def write_corpus(messages: Iterable[CorpusMessage], path: Path) -> int:
    """Write messages to `path` atomically (a partial file never appears); return the count."""
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        for message in messages:
            yield orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
            count += 1

    write_lines(lines(), path)
    return count


def write_lines(chunks: Iterable[bytes], path: Path) -> None:
    """Write chunks of corpus lines to `path` atomically: a partial file never appears.

    The importer writes a thread's lines at a time (`mimical.corpus.segment.corpus_lines`).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with tmp.open("wb", buffering=1024 * 1024) as out:
            for chunk in chunks:
                out.write(chunk)
                del chunk  # not kept alive while the next one is made: memory stays flat
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_corpus(path: Path) -> Iterator[CorpusMessage]:
    """Stream the records of a corpus file; a malformed line is an `InputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such corpus file")
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield CorpusMessage(**orjson.loads(line))
            except (orjson.JSONDecodeError, TypeError) as error:
                raise InputError(f"{path}:{number}: not a corpus record ({error})") from None


def _turns(conversation: list[CorpusMessage]) -> Iterator[tuple[bool, str, bool]]:
    """(persona, text, starts) of each turn: a sender's consecutive messages joined."""
    for _, group in itertools.groupby(conversation, key=lambda m: m.turn):
        messages = list(group)
        yield messages[0].persona, "\n".join(m.text for m in messages), messages[0].starts


def training_pairs(
    messages: Iterable[CorpusMessage], context_turns: int = DEFAULT_CONTEXT_TURNS
) -> Iterator[Pair]:
    """Every persona turn with the `context_turns` turns before it in its conversation.

    Openers (`starts`) get an empty context, which teaches the model how the persona
    opens a chat. Turns by others are context only, never targets.
    """
    key = lambda m: (m.thread, m.conversation)  # noqa: E731
    for (thread, conversation), group in itertools.groupby(messages, key=key):
        history: list[str] = []
        for persona, text, starts in _turns(list(group)):
            if persona:
                context = "\n".join(history[-context_turns:]) if not starts else ""
                yield Pair(thread, conversation, context, text, starts)
            history.append(text)

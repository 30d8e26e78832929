"""The corpus format: JSON Lines, one human text message per line.

Lines are grouped by thread and chronological within each thread. Fields:

- `thread`: stable id of the chat the message came from.
- `conversation`: 0-based index of the conversation within the thread; a new one
  starts after a long silence (see `mimical.corpus.segment`).
- `turn`: 0-based index of the turn within the conversation; consecutive messages
  from one sender share a turn.
- `sender`: display name; `persona`: true when the exporting user wrote it.
- `time`: ISO 8601 UTC timestamp, whole seconds (`utc_time`); `text`: the (scrubbed) text.
- `starts`: true on the persona's messages when its turn opens a conversation.

The importer writes the records with `record_lines` and `write_lines`; training reads
them back with `read_corpus` and makes (context → reply) pairs with `training_pairs`.
"""

from __future__ import annotations

import functools
import io
import itertools
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from mimical.atomic import atomic_file
from mimical.errors import InputError

# How many turns before a persona reply the model sees as context.
DEFAULT_CONTEXT_TURNS = 3
# The context's layout (base v3): every turn starts with a byte saying who said it, so
# that the model tells the friend's words from the persona's own earlier turn and sees
# where one turn ends; a turn's messages are joined by newlines. ASCII's group and record
# separators: single-byte tokens that no chat text holds (`layout_context` removes them).
OWN_TURN = "\x1d"
OTHER_TURN = "\x1e"
_MARKERS = str.maketrans({OWN_TURN: " ", OTHER_TURN: " "})
# What ends a message in a laid-out context: a newline or the next turn's marker (also
# the exported graph's rule, `mimical.model.retrieval`).
MESSAGE_BREAK = f"[\n{OWN_TURN}{OTHER_TURN}]"
_MESSAGE_BREAK = re.compile(MESSAGE_BREAK)
# What `mimical.corpus.scrub` puts where personal data was: `<URL:host>` keeps a link's
# host, the others stand alone. The model reads them in a context and never writes one.
PLACEHOLDERS = ("<EMAIL>", "<PHONE>", "<CARD>", "<IBAN>", "<URL>")
URL_PLACEHOLDER_START = "<URL:"
PLACEHOLDER = re.compile(r"<(?:EMAIL|PHONE|CARD|IBAN|URL(?::[^>]*)?)>")


# A plain dataclass: the import makes one per message, and orjson writes one with a
# `__dict__` 4x faster than a frozen or slotted one (which Python also builds slower).
@dataclass
class CorpusMessage:
    """One line of the corpus; the field order is the order of the JSON keys."""

    thread: str
    conversation: int
    turn: int
    sender: str
    persona: bool
    time: str
    text: str
    starts: bool = False


@dataclass(frozen=True, slots=True)
class Pair:
    """One training example: what others said (possibly empty) → the persona's turn."""

    thread: str
    conversation: int
    context: str  # earlier turns, oldest first, in `layout_context`'s layout; "" for openers
    reply: str  # the persona's whole turn, its messages joined by newlines
    starts: bool  # the reply opens the conversation
    # The turn just before the reply (the friend's, in a two-person chat); "" for openers.
    last_turn: str = ""


# "MM:SSZ" of each second of an hour: with the hour's "YYYY-MM-DDTHH:" cached, a time is
# two lookups (formatting each with `time.strftime` would take a fifth of the import).
MINUTES_SECONDS = tuple(f"{minute:02}:{second:02}Z" for minute in range(60) for second in range(60))


def utc_time(seconds: float) -> str:
    """The corpus time of a Unix time: ISO 8601 UTC in whole seconds, `2018-05-02T19:38:15Z`."""
    hour, second_of_hour = divmod(int(seconds), 3600)
    return _hour_prefix(hour) + MINUTES_SECONDS[second_of_hour]


@functools.lru_cache(maxsize=4096)
def _hour_prefix(hour: int) -> str:
    return time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * 3600))


def record_lines(records: Iterable[CorpusMessage]) -> bytes:
    """The records as corpus lines (JSON Lines), as `read_corpus` reads them back.

    Each line is copied out as soon as it is made: orjson gives every line a buffer of a
    few kB, and a thread's lines kept until one `join` would hold that much per message.
    """
    lines = io.BytesIO()
    for record in records:
        lines.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    return lines.getvalue()


def write_lines(chunks: Iterable[bytes], path: Path) -> None:
    """Write chunks of corpus lines to `path` atomically: a partial file never appears.

    The importer writes a thread's `record_lines` at a time.
    """
    with atomic_file(path, buffering=1024 * 1024) as out:
        for chunk in chunks:
            out.write(chunk)
            del chunk  # not kept alive while the next one is made: memory stays flat


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


def layout_context(turns: Iterable[tuple[bool, str]]) -> str:
    """The text the persona model reads for `turns` ((own, text), oldest first): each
    turn after its speaker's marker, `OWN_TURN` for the persona's, `OTHER_TURN` for
    anyone else's. Every context the model reads (training, pretraining, chat,
    suggestions) is laid out here."""
    return "".join(
        (OWN_TURN if own else OTHER_TURN) + text.translate(_MARKERS) for own, text in turns
    )


def context_messages(context: str) -> list[str]:
    """The messages of a laid-out context, oldest first, without the speaker markers."""
    return [m for m in _MESSAGE_BREAK.split(context) if m]


def context_turns(context: str) -> list[tuple[bool, str]]:
    """The (own, text) turns of a laid-out context: `layout_context` undone."""
    starts = [i for i, c in enumerate(context) if c in (OWN_TURN, OTHER_TURN)]
    ends = [*starts[1:], len(context)]
    return [
        (context[start] == OWN_TURN, context[start + 1 : end])
        for start, end in zip(starts, ends, strict=False)  # no marker: no turn (and no end)
    ]


def readable_context(context: str) -> str:
    """A laid-out context for people to read: each turn on a line after who said it."""
    return "\n".join(f"{'me' if own else 'them'}: {text}" for own, text in context_turns(context))


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
        history: list[tuple[bool, str]] = []
        for persona, text, starts in _turns(list(group)):
            if persona:
                before = history[-context_turns:] if not starts else []
                last_turn = before[-1][1] if before else ""
                yield Pair(thread, conversation, layout_context(before), text, starts, last_turn)
            history.append((persona, text))

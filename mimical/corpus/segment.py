"""Split a thread into conversations and turns, mark the persona's openers, write the lines.

- A new conversation starts when the gap since the previous message is longer than
  `gap_seconds` (default `GAP_THRESHOLD_SECONDS`, one hour: the threshold that misfiles
  the fewest gaps in the chitchat data set, see `python -m mimical.corpus.gaps`).
- Consecutive messages from one sender form a turn. A persona turn that opens a
  conversation `starts` it; every other persona turn is a response to the turns before
  it, which makes one training pair (see `mimical.corpus.schema.training_pairs`).

This runs for every message of an export, so it works a column at a time (senders,
times, texts) with `map`, `accumulate` and slicing, which run in C, rather than a Python
loop over messages; the result is the thread's corpus lines, exactly as
`orjson.dumps(CorpusMessage)` writes each record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import add, and_, floordiv, gt, mod, ne, or_, sub

import orjson

from mimical.corpus.chat import ChatThread

GAP_THRESHOLD_SECONDS = 3600

# Pieces of the time: "MM:SSZ" of each second of an hour, with what follows it in a line,
# and "HH:" of each hour of a day (the date is formatted once per day).
SECONDS_OF_HOUR = [b'%02d:%02dZ","text":"' % divmod(second, 60) for second in range(3600)]
HOURS_OF_DAY = [b"%02d:" % hour for hour in range(24)]
# How a line ends, after its text: by whether the message's turn `starts` a conversation.
LINE_ENDS = (b'","starts":false}\n', b'","starts":true}\n')


@dataclass
class SegmentCounts:
    messages: int = 0
    persona_messages: int = 0
    conversations: int = 0
    turns: int = 0
    pairs: int = 0  # persona turns: each is the reply of one training pair
    persona_starts: int = 0

    def add(self, other: SegmentCounts) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class Segments:
    """A thread's segmentation: its turns, and which turn each message is in."""

    message_turn: list[int]  # per message: its turn's index in the thread
    conversation: list[int]  # per turn: 0-based within the thread
    turn: list[int]  # per turn: 0-based within its conversation
    sender: list[str]  # per turn
    starts: list[bool]  # per turn: a persona turn that opens a conversation


def segment(
    senders: tuple[str, ...],
    times: tuple[float, ...],
    personas: frozenset[str],
    counts: SegmentCounts,
    gap_seconds: float = GAP_THRESHOLD_SECONDS,
) -> Segments:
    """Conversations and turns of chronological messages; adds them up in `counts`."""
    opens_conversation = [True, *map(gt, map(sub, times[1:], times[:-1]), repeat(gap_seconds))]
    opens_turn = [True, *map(or_, opens_conversation[1:], map(ne, senders[1:], senders[:-1]))]
    message_turn = list(accumulate(opens_turn[1:], initial=0))
    # From here on, one entry per turn.
    turn_opens_conversation = list(compress(opens_conversation, opens_turn))
    conversation = list(accumulate(turn_opens_conversation[1:], initial=0))
    turns = range(len(conversation))
    first_turn = list(compress(turns, turn_opens_conversation))  # of each conversation
    turn = list(map(sub, turns, map(first_turn.__getitem__, conversation)))
    sender = list(compress(senders, opens_turn))
    persona = list(map(personas.__contains__, sender))
    starts = list(map(and_, persona, turn_opens_conversation))
    counts.messages += len(senders)
    counts.conversations += len(first_turn)
    counts.turns += len(turns)
    counts.persona_messages += sum(map(personas.__contains__, senders))
    counts.pairs += sum(persona)
    counts.persona_starts += sum(starts)
    return Segments(message_turn, conversation, turn, sender, starts)


def corpus_lines(
    thread: ChatThread,
    personas: frozenset[str],
    counts: SegmentCounts,
    gap_seconds: float = GAP_THRESHOLD_SECONDS,
    transform: Callable[[list[str]], list[str]] = list,
) -> bytes:
    """The thread's corpus records as JSON Lines; `transform` (the PII scrubber's
    `scrub_all`) maps the list of texts.

    A line is put together from five pieces: all fields up to the time (the same for every
    message of a turn: made once per turn), the date and hour (made once per hour), the
    minutes and seconds (from a table), the JSON-encoded text, and how the line ends.
    """
    if not thread.messages:
        return b""
    senders, times, texts = zip(*thread.messages, strict=True)
    segments = segment(senders, times, personas, counts, gap_seconds)
    texts = _json_strings(transform(list(texts)))
    numbers = [b"%d" % n for n in range(max(segments.conversation[-1], max(segments.turn)) + 1)]
    thread_head = b'{"thread":' + orjson.dumps(thread.id) + b',"conversation":'
    conversation_heads = [thread_head + number + b',"turn":' for number in numbers]
    sender_pieces = {
        sender: b',"sender":%s,"persona":%s,"time":"'
        % (orjson.dumps(sender), b"true" if sender in personas else b"false")
        for sender in set(segments.sender)
    }
    turn_heads = list(
        map(
            add,
            map(add, map(conversation_heads.__getitem__, segments.conversation),
                map(numbers.__getitem__, segments.turn)),
            map(sender_pieces.__getitem__, segments.sender),
        )
    )  # fmt: skip
    turn_ends = list(map(LINE_ENDS.__getitem__, segments.starts))
    seconds = list(map(int, times))
    hours = list(map(floordiv, seconds, repeat(3600)))
    days: dict[int, bytes] = {}
    hour_pieces = {hour: _hour_piece(hour, days) for hour in set(hours)}
    pieces: list[bytes | None] = [None] * (5 * len(texts))
    pieces[0::5] = map(turn_heads.__getitem__, segments.message_turn)
    pieces[1::5] = map(hour_pieces.__getitem__, hours)
    pieces[2::5] = map(SECONDS_OF_HOUR.__getitem__, map(mod, seconds, repeat(3600)))
    pieces[3::5] = texts
    pieces[4::5] = map(turn_ends.__getitem__, segments.message_turn)
    return b"".join(pieces)


def _hour_piece(hour: int, days: dict[int, bytes]) -> bytes:
    """`YYYY-MM-DDTHH:` of an hour since the epoch; `days` caches the dates."""
    day, hour_of_day = divmod(hour, 24)
    date = days.get(day)
    if date is None:
        date = days[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400)).encode()
    return date + HOURS_OF_DAY[hour_of_day]


def _json_strings(texts: list[str]) -> list[bytes]:
    """Each text JSON-encoded as orjson does, without the quotes around it.

    One `orjson.dumps` of the whole list, split at the `","` between items: inside a
    string every quote is escaped, so a split is wrong only right after a backslash; then
    (rarely) each text is encoded on its own.
    """
    encoded = orjson.dumps(texts)
    parts = encoded[2:-2].split(b'","')
    if len(parts) != len(texts) or b'\\","' in encoded:
        parts = [orjson.dumps(text)[1:-1] for text in texts]
    return parts

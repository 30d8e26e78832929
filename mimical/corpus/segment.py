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
from itertools import accumulate, repeat
from operator import and_, floordiv, gt, mod, mul, ne, not_, or_, sub

import orjson

from mimical.corpus.chat import ChatThread

GAP_THRESHOLD_SECONDS = 3600

# "MM:SS" of each second of an hour; the hour before it is formatted once per hour.
MINUTES_SECONDS = [b"%02d:%02d" % divmod(second, 60) for second in range(3600)]


@dataclass
class SegmentCounts:
    messages: int = 0
    persona_messages: int = 0
    conversations: int = 0
    turns: int = 0
    pairs: int = 0  # persona turns: each is the reply of one training pair
    persona_starts: int = 0


@dataclass
class Segments:
    """A thread's segmentation, one entry per message (columns, in message order)."""

    conversation: list[int]  # 0-based within the thread
    turn: list[int]  # 0-based within the conversation
    persona: list[bool]
    starts: list[bool]  # the persona's messages in a turn that opens a conversation


def segment(
    senders: tuple[str, ...],
    times: tuple[float, ...],
    personas: frozenset[str],
    counts: SegmentCounts,
    gap_seconds: float = GAP_THRESHOLD_SECONDS,
) -> Segments:
    """Conversations and turns of chronological messages; adds them up in `counts`."""
    new_conversation = [True, *map(gt, map(sub, times[1:], times[:-1]), repeat(gap_seconds))]
    new_turn = [True, *map(or_, new_conversation[1:], map(ne, senders[1:], senders[:-1]))]
    conversation = list(accumulate(new_conversation[1:], initial=0))
    turn_number = list(accumulate(new_turn))  # 1-based, counted over the whole thread
    # The turn number each conversation opens with (it only grows, so `max` carries it on).
    first_turn = accumulate(map(mul, new_conversation, turn_number), max)
    turn = list(map(sub, turn_number, first_turn))
    persona = list(map(personas.__contains__, senders))
    starts = list(map(and_, persona, map(not_, turn)))
    persona_turns = list(map(and_, persona, new_turn))
    counts.messages += len(senders)
    counts.conversations += conversation[-1] + 1
    counts.turns += turn_number[-1]
    counts.persona_messages += sum(persona)
    counts.pairs += sum(persona_turns)
    counts.persona_starts += sum(map(and_, persona_turns, starts))
    return Segments(conversation, turn, persona, starts)


def corpus_lines(
    thread: ChatThread,
    personas: frozenset[str],
    counts: SegmentCounts,
    gap_seconds: float = GAP_THRESHOLD_SECONDS,
    transform: Callable[[list[str]], list[str]] = list,
) -> bytes:
    """The thread's corpus records as JSON Lines; `transform` (the PII scrubber's
    `scrub_all`) maps the list of texts.

    Each line is put together from pieces: the JSON of everything but the text comes from
    small per-thread tables (conversation and turn numbers, one piece per sender, one
    per hour of the timestamps), the texts are JSON-encoded in one call.
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
        for sender in set(senders)
    }
    seconds = list(map(int, times))
    hours = list(map(floordiv, seconds, repeat(3600)))
    hour_pieces = {
        hour: time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * 3600)).encode()
        for hour in set(hours)
    }
    pieces: list[bytes | None] = [None] * (9 * len(texts))
    pieces[0::9] = map(conversation_heads.__getitem__, segments.conversation)
    pieces[1::9] = map(numbers.__getitem__, segments.turn)
    pieces[2::9] = map(sender_pieces.__getitem__, senders)
    pieces[3::9] = map(hour_pieces.__getitem__, hours)
    pieces[4::9] = map(MINUTES_SECONDS.__getitem__, map(mod, seconds, repeat(3600)))
    pieces[5::9] = repeat(b'Z","text":"', len(texts))
    pieces[6::9] = texts
    pieces[7::9] = repeat(b'","starts":', len(texts))
    pieces[8::9] = map(_STARTS.__getitem__, segments.starts)
    return b"".join(pieces)


_STARTS = (b"false}\n", b"true}\n")


def _json_strings(texts: list[str]) -> list[bytes]:
    """Each text JSON-encoded as orjson does, without the quotes around it.

    One `orjson.dumps` of the whole list, split at the `","` between items: inside a
    string every quote is escaped, so a split is wrong only right after a backslash; then
    (rarely) each text is encoded on its own.
    """
    parts = orjson.dumps(texts)[2:-2].split(b'","')
    if len(parts) != len(texts) or any(map(bytes.endswith, parts, repeat(b"\\"))):
        parts = [orjson.dumps(text)[1:-1] for text in texts]
    return parts

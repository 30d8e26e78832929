"""Split a thread into conversations and turns, and mark the persona's openers.

- A new conversation starts when the gap since the previous message is longer than
  `gap_seconds` (default `GAP_THRESHOLD_SECONDS`, one hour: the threshold that misfiles
  the fewest gaps in the chitchat data set, see `python -m mimical.corpus.gaps`).
- Consecutive messages from one sender form a turn. A persona turn that opens a
  conversation `starts` it; every other persona turn is a response to the turns before
  it, which makes one training pair (see `mimical.corpus.schema.training_pairs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mimical.corpus.chat import ChatThread

GAP_THRESHOLD_SECONDS = 3600


@dataclass
class SegmentCounts:
    messages: int = 0
    persona_messages: int = 0
    conversations: int = 0
    turns: int = 0
    pairs: int = 0  # persona turns: each is the reply of one training pair
    persona_starts: int = 0


SECOND_SUFFIXES = tuple(f"{second:02}Z" for second in range(60))


def iso_utc(seconds: float, minutes: dict[int, str] | None = None) -> str:
    """ISO 8601 UTC to the second; `minutes` caches the formatted minute (4x faster, as
    chat messages come in bursts)."""
    whole = int(seconds)
    if minutes is None:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(whole))
    minute = whole // 60
    prefix = minutes.get(minute)
    if prefix is None:
        prefix = minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(whole))
    return prefix + SECOND_SUFFIXES[whole - minute * 60]


def segment_thread(
    thread: ChatThread,
    personas: frozenset[str],
    counts: SegmentCounts,
    gap_seconds: float = GAP_THRESHOLD_SECONDS,
    transform: Callable[[str], str] = str,
) -> list[dict]:
    """The thread's corpus records in order; `transform` (the PII scrubber) maps each text.

    Records are plain dicts with the fields of `CorpusMessage`: this runs for every
    message of an export, and a dict serializes several times faster than a dataclass.
    """
    records = []
    append = records.append
    minutes: dict[int, str] = {}
    conversation = turn = -1
    previous_time = previous_sender = None
    turns = persona_messages = pairs = persona_starts = 0
    for message in thread.messages:
        sender = message.sender
        if previous_time is None or message.time - previous_time > gap_seconds:
            conversation += 1
            turn = -1
            previous_sender = None
        new_turn = sender != previous_sender
        if new_turn:
            turn += 1
            turns += 1
        is_persona = sender in personas
        starts = is_persona and turn == 0
        if is_persona:
            persona_messages += 1
            if new_turn:
                pairs += 1
                persona_starts += starts
        previous_time, previous_sender = message.time, sender
        append(
            {
                "thread": thread.id,
                "conversation": conversation,
                "turn": turn,
                "sender": sender,
                "persona": is_persona,
                "time": iso_utc(message.time, minutes),
                "text": transform(message.text),
                "starts": starts,
            }
        )
    counts.messages += len(records)
    counts.conversations += conversation + 1
    counts.turns += turns
    counts.persona_messages += persona_messages
    counts.pairs += pairs
    counts.persona_starts += persona_starts
    return records

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mimical.corpus.chat import ChatThread
from mimical.corpus.schema import CorpusMessage

GAP_THRESHOLD_SECONDS = 3600


@dataclass
class SegmentCounts:
    messages: int = 0
    persona_messages: int = 0
    conversations: int = 0
    turns: int = 0
    pairs: int = 0  # persona turns: each is the reply of one training pair
    persona_starts: int = 0


def iso_utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def segment_thread(
    thread: ChatThread,
    personas: frozenset[str],
    counts: SegmentCounts,
    gap_seconds: float = GAP_THRESHOLD_SECONDS,
    transform: Callable[[str], str] = str,
) -> Iterator[CorpusMessage]:
    """The thread's corpus records, in order; `transform` (the PII scrubber) maps each text."""
    conversation = turn = -1
    previous_time = None
    previous_sender = None
    for message in thread.messages:
        if previous_time is None or message.time - previous_time > gap_seconds:
            conversation += 1
            turn = -1
            previous_sender = None
            counts.conversations += 1
        if message.sender != previous_sender:
            turn += 1
            counts.turns += 1
        is_persona = message.sender in personas
        starts = is_persona and turn == 0
        if is_persona:
            counts.persona_messages += 1
            if message.sender != previous_sender:
                counts.pairs += 1
                counts.persona_starts += starts
        counts.messages += 1
        previous_time, previous_sender = message.time, message.sender
        yield CorpusMessage(
            thread=thread.id,
            conversation=conversation,
            turn=turn,
            sender=message.sender,
            persona=is_persona,
            time=iso_utc(message.time),
            text=transform(message.text),
            starts=starts,
        )

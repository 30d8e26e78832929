"""Split a thread into conversations and turns, mark the persona's openers: its records.

- A new conversation starts when the gap since the previous message is longer than
  `gap_seconds` (default `GAP_THRESHOLD_SECONDS`, one hour: the threshold that misfiles
  the fewest gaps in the chitchat data set, see `python -m mimical.samples.gaps`).
- Consecutive messages from one sender form a turn. A persona turn that opens a
  conversation `starts` it; every other persona turn is a response to the turns before
  it, which makes one training pair (see `mimical.corpus.schema.training_pairs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mimical.corpus.schema import CorpusMessage, utc_time
from mimical.corpus.threads import ChatThread

GAP_THRESHOLD_SECONDS = 3600


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


def corpus_records(
    thread: ChatThread,
    personas: frozenset[str],
    counts: SegmentCounts,
    gap_seconds: float = GAP_THRESHOLD_SECONDS,
    scrub: Callable[[list[str]], list[str]] | None = None,
) -> Iterator[CorpusMessage]:
    """The thread's messages as corpus records, in order; once all are made, what they hold
    is added up in `counts`.

    `scrub` (the PII scrubber's `scrub_all`) maps the list of the thread's texts: it looks
    at all of them at once, which is much faster than text by text. Records are yielded
    one by one so that each is written while it is still in the CPU's cache.
    """
    if not thread.messages:
        return
    senders, times, texts = zip(*thread.messages, strict=True)
    if scrub is not None:
        texts = scrub(list(texts))
    conversation = turn = -1
    previous_time, previous_sender = -math.inf, None  # the first message opens a conversation
    turns = persona_messages = pairs = persona_starts = 0
    stamps = map(utc_time, times)
    for sender, seconds, time, text in zip(senders, times, stamps, texts, strict=True):
        opens_conversation = seconds - previous_time > gap_seconds
        if opens_conversation or sender != previous_sender:  # a new turn
            if opens_conversation:
                conversation, turn = conversation + 1, 0
            else:
                turn += 1
            persona = sender in personas  # the same for every message of the turn
            starts = persona and opens_conversation
            turns += 1
            pairs += persona
            persona_starts += starts
        persona_messages += persona
        yield CorpusMessage(thread.id, conversation, turn, sender, persona, time, text, starts)
        previous_time, previous_sender = seconds, sender
    counts.messages += len(senders)
    counts.persona_messages += persona_messages
    counts.conversations += conversation + 1
    counts.turns += turns
    counts.pairs += pairs
    counts.persona_starts += persona_starts

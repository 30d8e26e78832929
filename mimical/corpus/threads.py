"""What every export reader produces: threads of human text messages, oldest first.

Readers turn one export format into `ChatThread`s and count what they leave out in a
`Counter` keyed by one of `SKIP_REASONS`; the importer does the rest (persona,
segmentation, scrubbing) the same way for every format.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import NamedTuple

# Joins many texts so one bulk operation (mojibake repair, the PII byte scan) covers them
# all (ASCII "record separator"). A text can contain it too: callers check that splitting
# gives back as many pieces as texts, and otherwise work text by text.
RECORD_SEPARATOR = "\x1e"

# Why a message was left out of the corpus (the keys of the `skipped` stats).
SKIP_REASONS = (
    "media",  # photos, videos, GIFs, audio, files, locations, polls, contact cards
    "sticker",
    "call",  # calls, missed calls, video chats
    "unsent",  # unsent ("unsend") messages
    "deleted",  # "This message was deleted"
    "reaction",  # "X reacted ❤ to your message"
    "placeholder",  # "X sent an attachment.", "You sent a photo."
    "share",  # shared links/posts with no text of the sender's own
    "forwarded",  # forwarded messages: someone else's words
    "system",  # joined/left/renamed, encryption notices, service messages
    "empty",  # no text at all
    "unparsed",  # text lines that belong to no message (e.g. before the first header)
    "thread",  # whole threads left out: channels, saved messages, duplicates
)


class ChatMessage(NamedTuple):
    """A plain tuple, so a reader may build one as `(sender, time, text)` (the Messenger
    reader does: a NamedTuple's constructor costs as much as reading the message) and
    segmentation can take a thread's messages apart with `zip(*messages)`."""

    sender: str
    time: float  # seconds since the Unix epoch, UTC
    text: str


@dataclass
class ChatThread:
    id: str  # stable across re-imports of the same export
    title: str
    format: str  # e.g. "messenger", "whatsapp-ios"
    participants: set[str] = field(default_factory=set)
    messages: list[ChatMessage] = field(default_factory=list)  # chronological


# Sort key: exports are mostly but not always in order (pages, edits, clock skew).
by_time = itemgetter(1)  # ChatMessage.time

# No chat app is that old or that new: a message time outside this is not a real one (and
# past it the corpus's ISO time would not be defined).
EARLIEST_TIMESTAMP = datetime(1900, 1, 1, tzinfo=UTC).timestamp()
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC).timestamp()


def times_in_range(messages: list[ChatMessage]) -> bool:
    """Whether every time of chronological `messages` is a real one (see above)."""
    if not messages:
        return True
    return by_time(messages[0]) >= EARLIEST_TIMESTAMP and by_time(messages[-1]) < LATEST_TIMESTAMP


def clean_name(name: str | None) -> str:
    """Normalize a display name so the same person matches across threads and formats."""
    if not name:
        return ""
    name = unicodedata.normalize("NFC", name)
    return " ".join(name.replace("\u200e", "").replace("\u200f", "").split())

"""Telegram Desktop "Export chat history" in machine-readable JSON (`result.json`).

Two shapes: a full export (`personal_information` with the exporting user, then
`chats.list[]` and `left_chats.list[]`, each chat with its `messages[]`) and a
single-chat export (`name`, `type`, `id`, `messages[]` at the top). Full exports can be
gigabytes, so they are streamed chat by chat with ijson.

A message's `text` is a string, or a list of strings and entity objects
(`{"type": "bold", "text": ...}`) that concatenate to the text. Service messages
(joins, calls, pins), stickers, media without a caption and forwarded messages (someone
else's words) are skipped; channels, bots and "Saved Messages" are not conversations.
Times come from `date_unixtime` (UTC); `date` is the exporter's local time. A time that
is not a finite number of seconds in a plausible range ("1e400", "nan") is an `InputError`
naming the file, never a crash further down the build.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath

import ijson
import orjson

from mimical.corpus.sources import Source, json_events, unclaimed_members
from mimical.corpus.threads import LATEST_TIMESTAMP, ChatMessage, ChatThread, by_time, clean_name
from mimical.errors import InputError

CONVERSATION_TYPES = {"personal_chat", "private_group", "private_supergroup", "public_supergroup"}
MEDIA_KEYS = ("photo", "file", "media_type", "poll", "location_information", "contact_information")


class TelegramReader:
    format = "telegram"

    def __init__(self, files: list[tuple[Source, str, bool]]):
        self.files = files  # (source, member, is_full_export)

    @classmethod
    def detect(cls, sources: list[Source], claimed: set) -> TelegramReader | None:
        files = []
        for source, member, sniff in unclaimed_members(sources, claimed, ".json", 65536):
            full = b'"chats"' in sniff or b'"personal_information"' in sniff
            single = b'"messages"' in sniff and b'"type"' in sniff and b'"date"' in sniff
            if (full or single) and b'"senderName"' not in sniff:
                files.append((source, member, full))
                claimed.add((id(source), member))
        return cls(files) if files else None

    def __len__(self) -> int:
        return 0  # chats are only counted while they are streamed

    def _user(self) -> tuple[str, str] | None:
        """(display name, from_id) of the exporting user, from the first full export."""
        for source, member, full in self.files:
            if not full:
                continue
            with source.open(member) as handle:
                events = json_events(handle, source.where(member))
                info = next(ijson.items(events, "personal_information"), None)
            if isinstance(info, dict):
                parts = (info.get("first_name"), info.get("last_name"))
                name = " ".join(part for part in parts if isinstance(part, str) and part)
                return clean_name(name), f"user{info.get('user_id')}"
        return None

    def owner(self) -> str | None:
        user = self._user()
        return user[0] if user else None

    def participant_sets(self) -> Iterator[set[str]]:
        for thread in self.threads(Counter()):
            yield thread.participants

    def threads(self, skipped: Counter) -> Iterator[ChatThread]:
        user = self._user()
        for source, member, full in self.files:
            for chat in self._chats(source, member, full):
                if not isinstance(chat.get("type"), str) or chat["type"] not in CONVERSATION_TYPES:
                    skipped["thread"] += 1
                    continue
                try:
                    thread = to_thread(chat, user, skipped)
                except (AttributeError, TypeError, ValueError) as error:
                    raise InputError(
                        f"{source.where(member)}: unexpected message structure in chat"
                        f" {chat.get('id')} ({error})"
                    ) from None
                yield thread

    def _chats(self, source: Source, member: str, full: bool) -> Iterator[dict]:
        where = source.where(member)
        try:
            if not full:
                chat = orjson.loads(source.read(member))
                if not isinstance(chat, dict) or not isinstance(chat.get("messages"), list):
                    raise InputError(f"{where}: no 'messages' list")
                chat.setdefault("name", PurePosixPath(member).parent.name or "chat")
                yield chat
                return
            for prefix in ("chats.list.item", "left_chats.list.item"):
                with source.open(member) as handle:
                    for chat in ijson.items(json_events(handle, where), prefix):
                        if not isinstance(chat, dict):
                            raise InputError(f"{where}: unexpected chat {chat!r:.40}")
                        yield chat
        except (ijson.JSONError, orjson.JSONDecodeError) as error:
            raise InputError(f"{where}: corrupt JSON ({error})") from None


def to_thread(chat: dict, user: tuple[str, str] | None, skipped: Counter) -> ChatThread:
    name = clean_name(str(chat.get("name") or chat.get("id")))
    thread = ChatThread(id=f"telegram:{chat.get('id', name)}", title=name, format="telegram")
    if chat.get("type") == "personal_chat" and name:
        thread.participants.add(name)
    for message in chat.get("messages") or ():
        text = message_text(message, skipped)
        if text is None:
            continue
        sender = clean_name(message.get("from")) or "Deleted Account"
        if user and message.get("from_id") == user[1]:
            sender = user[0]
        thread.participants.add(sender)
        thread.messages.append(ChatMessage(sender, _time(message), text))
    thread.messages.sort(key=by_time)
    return thread


def flatten_text(text) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", "")) for part in text
        )
    return ""


def message_text(message: dict, skipped: Counter) -> str | None:
    text = flatten_text(message.get("text")).strip()
    if message.get("type") != "message":
        reason = "system"
    elif message.get("forwarded_from") is not None or "forwarded_from" in message:
        reason = "forwarded"
    elif message.get("media_type") == "sticker":
        reason = "sticker"
    elif not text:
        reason = "media" if any(key in message for key in MEDIA_KEYS) else "empty"
    else:
        return text
    skipped[reason] += 1
    return None


def _time(message: dict) -> float:
    """Seconds since the epoch; `ValueError` for a time no real message has."""
    if message.get("date_unixtime"):
        seconds = float(message["date_unixtime"])
        if not (math.isfinite(seconds) and 0 <= seconds < LATEST_TIMESTAMP):
            raise ValueError(f"date_unixtime {message['date_unixtime']!r} is not a message time")
        return seconds
    try:
        return datetime.fromisoformat(message["date"]).replace(tzinfo=UTC).timestamp()
    except (KeyError, TypeError, ValueError):
        return 0.0
